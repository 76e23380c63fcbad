// Package localdb finds or makes the PostgreSQL database that notifyd uses when
// nobody configured one, so that `make run` and `make test` work on a fresh
// machine without a setup step.
//
// Resolve tries, in order: DATABASE_URL as given; a server on 127.0.0.1:5432
// (creating the database if missing); a private cluster started from the
// PostgreSQL binaries installed on the machine; and otherwise fails with a
// message saying what to install. The only environment it reads is where
// binaries and caches live (PATH, XDG_CACHE_HOME, HOME, through the standard
// library): cmd/ passes DATABASE_URL in.
//
// StartCluster runs a throwaway cluster whose lifetime a test controls (Stop,
// Restart, Kill), which is what fault tests need to crash PostgreSQL under
// load.
//
// Process lifetime. A cluster from StartCluster is a child of this process: it
// is stopped by Stop, and on Linux the kernel kills it if this process dies
// first, so a crashed test run leaves nothing behind. The private cluster of
// Resolve lives in a shared data directory instead (several test binaries and
// a `notifyd serve` may use it at once): each user holds a shared lock on it,
// and Database.Close stops the cluster when the last user closes. `notifyd
// serve` calls Close at exit, so its cluster stops with it; a process that
// dies without closing leaves the cluster running, and the next Resolve
// adopts it and stops it in turn.
//
// Running as root. initdb and postgres refuse to run as root, so as root both
// run as the `postgres` OS account: the data directory and the socket
// directory are handed to that account, and every directory above the data
// directory must be searchable by it (as /root is not, which is why root's
// default data directory lives under the postgres account's home).
package localdb
