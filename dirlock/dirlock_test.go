//go:build unix

package dirlock_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/dirlock"
)

func TestLockIsExclusiveUntilReleased(t *testing.T) {
	dir := t.TempDir()
	release, err := dirlock.Lock(dir, "a.lock", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dirlock.Lock(dir, "a.lock", 100*time.Millisecond); !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("a second lock while the first is held: %v, want ErrLocked", err)
	}
	other, err := dirlock.Lock(dir, "b.lock", 0)
	if err != nil {
		t.Fatalf("another name in the same directory: %v", err)
	}
	other()
	release()
	again, err := dirlock.Lock(dir, "a.lock", 0)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}

// A process that dies holding the lock (SIGKILL) leaves it free.
func TestLockOfADeadProcessIsFree(t *testing.T) {
	if os.Getenv("DIRLOCK_HOLD") != "" {
		if _, err := dirlock.Lock(os.Getenv("DIRLOCK_HOLD"), "a.lock", 0); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLockOfADeadProcessIsFree$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		cmd.Process.Kill()
		t.Fatalf("the child did not take the lock: %q %v", line, err)
	}
	if _, err := dirlock.Lock(dir, "a.lock", 0); !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("while the child lives: %v, want ErrLocked", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	release, err := dirlock.Lock(dir, "a.lock", 0)
	if err != nil {
		t.Fatalf("after the child was killed: %v", err)
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, "a.lock")); err != nil {
		t.Fatal(err)
	}
}
