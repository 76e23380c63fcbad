package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/notifyd/notifyd/internal/issuer"
	"github.com/notifyd/notifyd/internal/postgres"
)

func runDevToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var addr, sub string
	var roles []string
	var ttl time.Duration
	s := newSettings("dev-token", getenv, stderr)
	c.bind(s)
	s.String(&addr, "addr", "NOTIFY_ADDR", "127.0.0.1:8080", "address of the notifyd server that will verify the token")
	s.String(&sub, "sub", "", "", "user id (the token's sub); required")
	s.List(&roles, "roles", "", "", "roles to put in the token")
	s.Duration(&ttl, "ttl", "", time.Hour, "token lifetime")
	if err := s.parseNoArgs(args); err != nil {
		return helpOK(err)
	}
	if sub == "" {
		s.fs.Usage()
		return usageError{"dev-token needs --sub, the user id to sign in as"}
	}
	sess, err := openSession(ctx, &c, stderr, "dev-token")
	if err != nil {
		return err
	}
	defer sess.Close(ctx)
	pem, err := postgres.DevSigningKey(ctx, sess.pool, issuer.NewKeyPEM)
	if err != nil {
		return err
	}
	key, err := issuer.ParseKey(pem)
	if err != nil {
		return fmt.Errorf("parse dev signing key: %w", err)
	}
	iss, err := issuer.New(issuer.Config{URL: "http://" + addr + "/dev-issuer", Key: key})
	if err != nil {
		return err
	}
	token, err := iss.Token(sub, roles, ttl)
	if err != nil {
		return fmt.Errorf("sign token: %w", err)
	}
	fmt.Fprintln(stdout, token)
	return nil
}
