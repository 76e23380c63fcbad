package localdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// account is the OS identity that initdb and postgres run as. Both refuse to
// run as root, so as root they run as the postgres account and everything
// they touch must be handed to it; otherwise they run as the current user.
type account struct {
	name string
	home string
	uid  uint32
	gid  uint32
	gids []uint32 // every group of the account, for the permission check
	// switchTo is true when the server must run as this account rather than
	// as the current user (that is, when we are root).
	switchTo bool
}

// serverAccount picks the account for initdb and postgres.
func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return account{}, fmt.Errorf("look up current user: %w", err)
		}
		return accountOf(u, false)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return account{}, fmt.Errorf("look up the postgres OS user (initdb and postgres refuse to run as root, so as root they run as postgres): %w", err)
	}
	return accountOf(u, true)
}

func accountOf(u *user.User, switchTo bool) (account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("parse uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("parse gid of %s: %w", u.Username, err)
	}
	a := account{name: u.Username, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid), switchTo: switchTo}
	a.gids = []uint32{a.gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				a.gids = append(a.gids, uint32(g))
			}
		}
	}
	return a, nil
}

// sysProcAttr runs a child as the account, in its own process group so that a
// Ctrl-C meant for notifyd does not reach PostgreSQL behind its back.
func (a account) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if a.switchTo {
		attr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid}
	}
	return attr
}

// own hands path to the account; a no-op when the server runs as ourselves.
func (a account) own(path string) error {
	if !a.switchTo {
		return nil
	}
	if err := os.Chown(path, int(a.uid), int(a.gid)); err != nil {
		return fmt.Errorf("hand %s to %s: %w", path, a.name, err)
	}
	return nil
}

// canReach reports, with a clear error, an existing directory above path that
// the account may not enter. Only a switched account can be locked out: the
// current user created or chose the path itself.
func (a account) canReach(path string) error {
	if !a.switchTo {
		return nil
	}
	for dir := filepath.Dir(filepath.Clean(path)); ; dir = filepath.Dir(dir) {
		if err := a.canSearch(dir); err != nil {
			return err
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func (a account) canSearch(dir string) error {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not there (yet): nothing to be locked out of
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	perm := info.Mode().Perm()
	var allowed bool
	switch {
	case st.Uid == a.uid:
		allowed = perm&0o100 != 0
	case slices.Contains(a.gids, st.Gid):
		allowed = perm&0o010 != 0
	default:
		allowed = perm&0o001 != 0
	}
	if !allowed {
		return fmt.Errorf("the %s OS user, which runs PostgreSQL because we are root, cannot enter %s (mode %s, owner uid %d): choose a data directory it can reach", a.name, dir, perm, st.Uid)
	}
	return nil
}
