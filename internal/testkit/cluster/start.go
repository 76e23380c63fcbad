package cluster

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"

	"github.com/notifyd/notifyd/internal/issuer"
)

// StartNodes starts n nodes, node i with config(i), and returns them once
// every one answers /readyz. The first starts alone: on a fresh database it
// runs the migrations, which the others then find done; the rest start
// together. On error the slice still holds the nodes that did start (nil
// for the others), for the caller to stop.
func StartNodes(ctx context.Context, n int, config func(i int) NodeConfig) ([]*Node, error) {
	nodes := make([]*Node, n)
	if n == 0 {
		return nodes, nil
	}
	var err error
	if nodes[0], err = StartNode(ctx, config(0)); err != nil {
		return nodes, err
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i], errs[i] = StartNode(ctx, config(i)) }()
	}
	wg.Wait()
	return nodes, errors.Join(errs...)
}

// Issuer is an OpenID Connect issuer on its own HTTP server: the identity
// provider every node of a run trusts, so that one token works on any node
// and a stream can resume anywhere.
type Issuer struct {
	*issuer.Issuer
	srv *httptest.Server
}

// StartIssuer serves a new issuer signing for clientID (the nodes'
// OIDC_AUDIENCE) on a free loopback port.
func StartIssuer(clientID string) (*Issuer, error) {
	// The issuer's URL must be known before it is built: listen first.
	srv := httptest.NewServer(nil)
	iss, err := issuer.New(issuer.Config{URL: srv.URL, ClientID: clientID})
	if err != nil {
		srv.Close()
		return nil, err
	}
	srv.Config.Handler = iss.Handler()
	return &Issuer{Issuer: iss, srv: srv}, nil
}

// Close stops the issuer's server.
func (i *Issuer) Close() { i.srv.Close() }
