package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/sinks"
)

const deadUsage = `Usage:
  bilibridge dead list [--sink NAME] [--all]   list the events sinks gave up on (the newest 50; --all: every one)
  bilibridge dead replay ID…                   deliver those dead letters to their sink again
  bilibridge dead replay --all [--sink NAME]   … every dead letter (of one sink)

These go through the HTTP API of the running bridge at HTTP_ADDR, with API_TOKEN (or --token, a
member's personal token from ` + "`bilibridge member token`" + `).
`

// deadCommand runs `bilibridge dead …`.
func deadCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, deadUsage)
		if len(args) == 0 {
			return errors.New("dead: say what to do: list or replay")
		}
		return nil
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("dead "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, deadUsage) }
	sink := fs.String("sink", "", "only the dead letters of this sink")
	all := fs.Bool("all", false, "list: every dead letter, not only the newest 50; replay: every dead letter")
	token := fs.String("token", "", "an API token (default: API_TOKEN)")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	c, err := newAPIClient(cfg, *token)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		if fs.NArg() > 0 {
			return fmt.Errorf("dead list: unexpected argument %q", fs.Arg(0))
		}
		list, err := c.deadLetters(ctx, *sink)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(stdout, "No dead letters.")
			return nil
		}
		shown := list
		if !*all && len(shown) > 50 {
			shown = shown[len(shown)-50:]
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tSINK\tEVENT\tREPLAYS\tREASON")
		for _, d := range shown {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Time.Local().Format(time.DateTime), d.Sink, d.Event.ID, d.Replays, oneLine(d.Reason, 80))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(shown) < len(list) {
			fmt.Fprintf(stdout, "(%d older not shown; --all shows every one)\n", len(list)-len(shown))
		}
		return nil
	case "replay":
		ids := fs.Args()
		switch {
		case *all && len(ids) > 0:
			return errors.New("dead replay: give ids or --all, not both")
		case *all:
			list, err := c.deadLetters(ctx, *sink)
			if err != nil {
				return err
			}
			for _, d := range list {
				ids = append(ids, d.ID)
			}
		case len(ids) == 0:
			return errors.New("dead replay: which? give dead letter ids (from `bilibridge dead list`) or --all")
		}
		for _, id := range ids {
			d, err := c.replay(ctx, id)
			if err != nil {
				return fmt.Errorf("dead replay %s: %w", id, err)
			}
			fmt.Fprintf(stdout, "replayed %s: event %s to %s\n", d.ID, d.Event.ID, d.Sink)
		}
		return nil
	}
	return fmt.Errorf("dead: unknown command %q; run `bilibridge dead -h`", verb)
}

// oneLine cuts s to n characters on one line.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// apiClient calls the HTTP API of a running bridge.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(cfg *config.Config, token string) (*apiClient, error) {
	if token == "" {
		token = cfg.APIToken
	}
	if token == "" {
		return nil, errors.New("no API token: set API_TOKEN as for the bridge, or pass --token with a member's token (`bilibridge member token NAME`)")
	}
	if cfg.HTTPAddr == "" {
		return nil, errors.New("HTTP_ADDR is empty: the bridge serves no API to reach")
	}
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP_ADDR %q: %w", cfg.HTTPAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return &apiClient{base: "http://" + net.JoinHostPort(host, port), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// call sends method path and decodes the JSON answer into out; an error
// answer becomes an error with the API's message.
func (c *apiClient) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the bridge's API at %s does not answer (is `bilibridge run` running?): %w", c.base, plainNetError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("the API answered %s", resp.Status)
	}
	return json.Unmarshal(body, out)
}

// deadLetters lists every dead letter (of sink), oldest first.
func (c *apiClient) deadLetters(ctx context.Context, sink string) ([]sinks.DeadLetter, error) {
	var all []sinks.DeadLetter
	cursor := ""
	for {
		q := url.Values{"limit": {"200"}}
		if sink != "" {
			q.Set("sink", sink)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			DeadLetters []sinks.DeadLetter `json:"dead_letters"`
			NextCursor  string             `json:"next_cursor"`
		}
		if err := c.call(ctx, "GET", "/api/v1/dead-letters?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all = append(all, page.DeadLetters...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

func (c *apiClient) replay(ctx context.Context, id string) (*sinks.DeadLetter, error) {
	var d sinks.DeadLetter
	if err := c.call(ctx, "POST", "/api/v1/dead-letters/"+url.PathEscape(id)+"/replay", &d); err != nil {
		return nil, err
	}
	return &d, nil
}
