package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// proc reads a process's CPU time and memory from /proc ("self" or a pid).
type proc struct{ pid string }

// cpu returns user+system CPU time so far.
func (p proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + p.pid + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected %q", p.pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected %q", p.pid, s)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected %q", p.pid, s)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// mem returns VmRSS and VmHWM in kB.
func (p proc) mem() (rss, hwm int64, err error) {
	f, err := os.Open("/proc/" + p.pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return rss, hwm, sc.Err()
}

// PhaseStats is what one phase cost the measured process.
type PhaseStats struct {
	Name    string
	Wall    time.Duration
	CPU     time.Duration // user + system
	RSSEnd  int64         // kB at the end of the phase
	RSSPeak int64         // kB, highest of 10 samples a second
	HWM     int64         // kB, VmHWM at the end (the process's peak so far)
}

// CPUPercent is CPU time over wall time (100 = one core busy).
func (s PhaseStats) CPUPercent() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return 100 * s.CPU.Seconds() / s.Wall.Seconds()
}

// phase measures one phase of a process: CPU delta and RSS sampled every
// 100 ms.
type phase struct {
	p     proc
	name  string
	start time.Time
	cpu0  time.Duration
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	peak  int64
}

func startPhase(p proc, name string) *phase {
	ph := &phase{p: p, name: name, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	ph.cpu0, _ = p.cpu()
	go func() {
		defer close(ph.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			ph.sample()
			select {
			case <-ph.stop:
				return
			case <-t.C:
			}
		}
	}()
	return ph
}

func (ph *phase) sample() {
	if rss, _, err := ph.p.mem(); err == nil {
		ph.mu.Lock()
		ph.peak = max(ph.peak, rss)
		ph.mu.Unlock()
	}
}

// end stops sampling and returns the phase's figures.
func (ph *phase) end() PhaseStats {
	close(ph.stop)
	<-ph.done
	ph.sample()
	s := PhaseStats{Name: ph.name, Wall: time.Since(ph.start)}
	if c, err := ph.p.cpu(); err == nil {
		s.CPU = c - ph.cpu0
	}
	s.RSSEnd, s.HWM, _ = ph.p.mem()
	ph.mu.Lock()
	s.RSSPeak = max(ph.peak, s.RSSEnd)
	ph.mu.Unlock()
	return s
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
