package wire

import (
	"bytes"
	"errors"
)

// ErrBackupSuffix is returned by CheckBackupSuffix.
var ErrBackupSuffix = errors.New("wire: a backup suffix must be a non-empty file name part (no '/' or NUL)")

// CheckBackupSuffix checks a suffix of MgrCreateBackup/SrvCreateBackup: a
// server writes its backup next to its store, at the store's path, "-" and
// the suffix, so the suffix may not name another folder.
func CheckBackupSuffix(s []byte) error {
	if len(s) == 0 || bytes.ContainsAny(s, "/\x00") {
		return ErrBackupSuffix
	}
	return nil
}
