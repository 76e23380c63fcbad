package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/wire"
)

// versusSystem is one server the versus phase compares: how a stream opens
// and how one message is published. Everything else (the SSE reader, the
// pacing, the clock, the statistics) is the same code for both.
type versusSystem interface {
	// Name is the system's name in the report.
	Name() string
	// Open opens stream i and returns once the server has confirmed it
	// (notifyd's "connected" message, Centrifugo's connect push with the
	// subscription), so a message published afterwards reaches it.
	Open(ctx context.Context, i int) (*wire.Stream, error)
	// Publish sends message k to every stream; its payload carries
	// versusMarker(k).
	Publish(ctx context.Context, k int) error
	// ClockAtReturn says where a message's latency starts: when Publish
	// returned (notifyd: the INSERT committed) or when it was called
	// (Centrifugo: its broadcast happens inside the request, so a stream
	// can receive a message before the response arrives).
	ClockAtReturn() bool
	// PID is the server process, for its RSS.
	PID() int
}

// versusMarker is what a message's payload carries: its number, found
// again by versusMessage in either system's event.
func versusMarker(k int) string { return "vs:" + strconv.Itoa(k) + ":" }

// versusMessage finds the number of the message an event carries; ok is
// false for other events (heartbeats, pings).
func versusMessage(data []byte) (k int, ok bool) {
	i := bytes.Index(data, []byte("vs:"))
	if i < 0 {
		return 0, false
	}
	rest := data[i+3:]
	j := bytes.IndexByte(rest, ':')
	if j <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return n, err == nil
}

// How the versus phase publishes notifyd's messages (-versus-publish).
const (
	versusInsert = "insert" // an autocommit INSERT, as producers write them; a worker publishes it
	versusSend   = "send"   // SELECT notify.send(...): born published in the producer's commit
	versusHTTP   = "http"   // POST /api/notifications, which sends born published
)

var versusPublishModes = []string{versusInsert, versusSend, versusHTTP}

// notifydVersus is one notifyd node; messages are notifications to
// everyone, published as mode says.
type notifydVersus struct {
	node   *cluster.Node
	pool   *pgxpool.Pool
	client *http.Client
	tokens []string // one user per stream
	mode   string   // versusPublishModes
	admin  string   // the publishing token (http)
}

func (n *notifydVersus) Name() string { return "notifyd" }

// ClockAtReturn: an INSERT's latency starts at its commit (the worker
// publishes afterwards); a born-published notification can reach a stream
// before its publish call returns, so its clock starts at the call, as
// Centrifugo's does.
func (n *notifydVersus) ClockAtReturn() bool { return n.mode == versusInsert }
func (n *notifydVersus) PID() int            { return n.node.PID() }

func (n *notifydVersus) Open(ctx context.Context, i int) (*wire.Stream, error) {
	s, err := wire.Open(ctx, n.client, n.node.URL()+cluster.StreamPath,
		http.Header{"Authorization": {"Bearer " + n.tokens[i%len(n.tokens)]}})
	if err != nil {
		return nil, err
	}
	ev, err := s.Next()
	if err == nil && !bytes.Contains(ev.Data, []byte(`"type":"connected"`)) {
		err = fmt.Errorf("first message %.200q, want connected", ev.Data)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("notifyd stream %d: %w", i, err)
	}
	return s, nil
}

func (n *notifydVersus) Publish(ctx context.Context, k int) error {
	switch n.mode {
	case versusSend:
		if _, err := n.pool.Exec(ctx, `SELECT notify.send($1, module => 'versus')`, versusMarker(k)); err != nil {
			return fmt.Errorf("notifyd: notify.send: %w", err)
		}
	case versusHTTP:
		return n.post(ctx, k)
	default:
		if _, err := n.pool.Exec(ctx, `INSERT INTO notify.notifications (message, module) VALUES ($1, 'versus')`, versusMarker(k)); err != nil {
			return fmt.Errorf("notifyd: insert: %w", err)
		}
	}
	return nil
}

// post publishes message k over the HTTP API.
func (n *notifydVersus) post(ctx context.Context, k int) error {
	body := `{"message":"` + versusMarker(k) + `","module":"versus"}`
	return doJSON(ctx, n.client, http.MethodPost, n.node.URL()+"/api/notifications", http.Header{"Authorization": {"Bearer " + n.admin}},
		[]byte(body), http.StatusCreated, nil)
}

// centrifugoVersus is one Centrifugo; messages go through its HTTP API's
// publish to the one channel every stream subscribed to when connecting.
type centrifugoVersus struct {
	c      *centrifugo
	client *http.Client
}

func (c *centrifugoVersus) Name() string        { return "centrifugo" }
func (c *centrifugoVersus) ClockAtReturn() bool { return false }
func (c *centrifugoVersus) PID() int            { return c.c.PID() }

// centrifugoConnect is the connect request of every stream: anonymous, a
// server-side subscription to the channel.
var centrifugoConnect = url.QueryEscape(`{"subs":{"` + centrifugoChannel + `":{}}}`)

func (c *centrifugoVersus) Open(ctx context.Context, i int) (*wire.Stream, error) {
	s, err := wire.Open(ctx, c.client, c.c.URL+"/connection/uni_sse?cf_connect="+centrifugoConnect, nil)
	if err != nil {
		return nil, err
	}
	ev, err := s.Next()
	if err == nil && (!bytes.Contains(ev.Data, []byte(`"connect"`)) || !bytes.Contains(ev.Data, []byte(`"`+centrifugoChannel+`"`))) {
		err = fmt.Errorf("first message %.300q, want a connect push subscribing to %q", ev.Data, centrifugoChannel)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("centrifugo stream %d: %w", i, err)
	}
	return s, nil
}

func (c *centrifugoVersus) Publish(ctx context.Context, k int) error {
	body := `{"channel":"` + centrifugoChannel + `","data":{"m":"` + versusMarker(k) + `"}}`
	var answer struct {
		Error json.RawMessage `json:"error"`
	}
	err := doJSON(ctx, c.client, http.MethodPost, c.c.URL+"/api/publish", http.Header{"X-API-Key": {c.c.APIKey}}, []byte(body), http.StatusOK, &answer)
	if err == nil && answer.Error != nil {
		err = fmt.Errorf("centrifugo: publish answered %s", answer.Error)
	}
	return err
}
