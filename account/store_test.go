package account_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bilibridge/bilibridge/account"
)

func TestCheckDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		dir     string
		wantErr bool
	}{
		{"existing directory", t.TempDir(), false},
		{"directory to make", filepath.Join(t.TempDir(), "new", "data"), false},
		// Tests may run as root, whom permissions do not stop; a path
		// under a regular file stops everyone.
		{"under a regular file", filepath.Join(file, "data"), true},
		{"a regular file", file, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := account.CheckDir(tc.dir)
			if (err != nil) != tc.wantErr {
				t.Fatalf("CheckDir(%s) = %v, want error %v", tc.dir, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			left, err := os.ReadDir(tc.dir)
			if err != nil {
				t.Fatalf("CheckDir(%s) did not make the directory: %v", tc.dir, err)
			}
			if len(left) != 0 {
				t.Errorf("CheckDir left %d file(s) behind in %s", len(left), tc.dir)
			}
		})
	}
}
