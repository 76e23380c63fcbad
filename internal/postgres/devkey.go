package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DevSigningKey returns the development issuer's private key (PEM), creating
// it with generate on first use. It lives in the database so that every node
// and `notifyd dev-token` sign with the same key. The table exists only on
// databases where development sign-in was used.
func DevSigningKey(ctx context.Context, pool *pgxpool.Pool, generate func() ([]byte, error)) ([]byte, error) {
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS notify.dev_signing_key (
			id boolean PRIMARY KEY DEFAULT true CHECK (id),
			pem text NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create dev signing key table: %w", interpretError(err))
	}
	var pem string
	err := pool.QueryRow(ctx, `SELECT pem FROM notify.dev_signing_key`).Scan(&pem)
	if err == nil {
		return []byte(pem), nil
	}
	fresh, gerr := generate()
	if gerr != nil {
		return nil, fmt.Errorf("generate dev signing key: %w", gerr)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO notify.dev_signing_key (pem) VALUES ($1) ON CONFLICT (id) DO NOTHING`, string(fresh)); err != nil {
		return nil, fmt.Errorf("store dev signing key: %w", interpretError(err))
	}
	if err := pool.QueryRow(ctx, `SELECT pem FROM notify.dev_signing_key`).Scan(&pem); err != nil {
		return nil, fmt.Errorf("read dev signing key: %w", interpretError(err))
	}
	return []byte(pem), nil
}
