package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

func round(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// Print writes the report as `bilibridge bench` shows it.
func Print(w io.Writer, r *Report) {
	o := r.Options
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("bilibridge bench: the real bridge against a fake Bilibili (bilitest) and a local webhook receiver")
	if r.Mode == "subprocess" {
		p("  bridge    subprocess `%s` (RSS and CPU below are that process alone)", strings.Join(o.Bridge, " "))
	} else {
		p("  bridge    app.Run in this process (RSS and CPU below include the fake Bilibili and the webhook receiver)")
	}
	p("  config    POLL_INTERVAL=%s START_FROM=now, embedded NATS on disk in a temp DATA_DIR (NATS_LISTEN=off), HTTP off,", o.PollInterval)
	p("            one webhook endpoint, signed; Bilibili request budget %d req/s burst %d (the client's default; app.Run has no setting for it)", budgetRate, budgetBurst)
	p("  machine   %d CPUs, %s %s/%s; load average %s at the start, %s at the end", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, r.LoadAvg[0], r.LoadAvg[1])
	p("  seed      %d", o.Seed)
	p("")
	p("first start: %d conversations tracked (START_FROM=now) in %s, until the first new_sessions poll; calls: %s",
		o.Conversations, round(r.Bootstrap.Window), r.Bootstrap)
	p("")

	l := r.Latency
	p("1. latency: %d messages injected at random moments over %s (one every %s on average), POLL_INTERVAL=%s",
		l.Sent, o.LatencyDuration, o.LatencyEvery, o.PollInterval)
	p("   delivered %d of %d, lost %d", l.Delivered, l.Sent, l.Lost)
	p("   injected → webhook receipt        %s", l.Latency)
	p("     injected → fetched              %s   (waiting for the next poll)", l.Wait)
	p("     fetched → receipt               %s   (includes a cards name lookup when the talker is new to this process)", l.Fetched)
	p("     last Bilibili answer → receipt  %s   (poller publish, JetStream, sink runtime, signed POST)", l.Pipeline)
	p("")

	p("2. Bilibili calls")
	perMsg := 0.0
	if l.Delivered > 0 {
		perMsg = float64(l.Calls.Total()) / float64(l.Delivered)
	}
	p("   during 1: %d calls for %d delivered = %.2f calls per message (%s)", l.Calls.Total(), l.Delivered, perMsg, l.Calls)
	scale := float64(time.Hour) / float64(r.Idle.Window)
	p("   idle: %d calls in %s (%s) → %.0f calls per hour (the %s window × %.0f)",
		r.Idle.Total(), r.Idle.Window, r.Idle, float64(r.Idle.Total())*scale, r.Idle.Window, scale)
	p("")

	b := r.Backlog
	p("3. backlog drain: %d messages across %d conversations waiting after downtime; the bridge restarted on the same DATA_DIR", b.Messages, b.Conversations)
	p("   delivered %d of %d, lost %d, out of order %d, duplicates %d", b.Delivered, b.Messages, b.Lost, b.OutOfOrder, b.Duplicates)
	rate := 0.0
	if b.Drain > 0 {
		rate = float64(b.Delivered) / b.Drain.Seconds()
	}
	p("   all delivered %s after the start (%.0f messages/s); first receipt after %s; last fetch_session_msgs answered at %s",
		round(b.Drain), rate, round(b.FirstReceipt), round(b.LastCall))
	p("   Bilibili calls: %d (%s)", b.Calls.Total(), b.Calls)
	p("   %d calls up to the last fetch need at least %s at the request budget (%d/s after a burst of %d)",
		b.CallsToLastFetch, round(BudgetFloor(b.CallsToLastFetch)), budgetRate, budgetBurst)
	p("   fetched → receipt               %s", b.Fetched)
	p("   last Bilibili answer → receipt  %s   (for the message's conversation: its fetch or name lookup)", b.Pipeline)
	p("")

	p("4. resources of the bridge")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "   phase\twall\tCPU\tCPU %\tRSS end\tRSS peak\tVmHWM\t")
	for _, s := range r.Phases {
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%.1f\t%s\t%s\t%s\t\n", s.Name, round(s.Wall), round(s.CPU), s.CPUPercent(), mb(s.RSSEnd), mb(s.RSSPeak), mb(s.HWM))
	}
	tw.Flush()
	if r.Mode == "subprocess" {
		p("   (one process for the first three phases, a new one for the drain; VmHWM is that process's peak so far)")
	}
	p("")

	bl := r.Baseline
	p("5. baseline: the drain's %d payloads (%.0f B on average) through a raw JetStream loop on a fresh embedded server", bl.Events, float64(bl.Bytes)/float64(max(bl.Events, 1)))
	p("   (publish one by one, each waiting for its ack, as the poller does; a pull consumer acks each)")
	if bl.Wall > 0 {
		p("   %s, %.0f events/s, CPU %s (this process)", round(bl.Wall), float64(bl.Events)/bl.Wall.Seconds(), round(bl.CPU))
		p("   pipeline / raw: drain %s / %s = %.0f×", round(b.Drain), round(bl.Wall), b.Drain.Seconds()/bl.Wall.Seconds())
		if after := b.Drain - b.LastCall; b.LastCall > 0 {
			p("   of the drain, %s is the wait for Bilibili (up to the last fetch) and %s comes after it", round(b.LastCall), round(after))
		}
	}
	p("")
	c := r.Receiver
	p("webhook: %d requests over the run; %d bad signatures, %d unexpected bodies, %d out of order, %d duplicates",
		c.Requests, c.BadSignatures, c.BadBodies, c.OutOfOrder, c.Duplicates)
	if err := r.Problems(); err != nil {
		p("PROBLEMS: %v", err)
	}
}
