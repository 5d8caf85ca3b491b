package config_test

// Checks of the deployment files at the repository root (Docker does not
// run here): every NATS they start requires a login, every bridge has it,
// and no NATS port is published beyond the host's loopback.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/bilibridge/bilibridge/config"
)

// composeService is what these checks read of a compose service. The
// fields of type any take each of compose's syntaxes (a string, a list or a
// mapping); the YAML decoder resolves anchors and merge keys into them.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []yaml.Node       `yaml:"ports"`
	EnvFile     any               `yaml:"env_file"`
	Volumes     []any             `yaml:"volumes"`
	Configs     []any             `yaml:"configs"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeFile is what these checks read of docker-compose.yml.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Configs  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"configs"`
}

func readComposeFile(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return f
}

func readCompose(t *testing.T) map[string]composeService {
	t.Helper()
	return readComposeFile(t).Services
}

// composeVar is compose's ${NAME}, ${NAME:-default} and ${NAME:?message}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}`)

// interpolate substitutes compose variables from env the way compose
// does for these forms: ":-" when unset or empty, ":?" fails with its
// message when unset or empty.
func interpolate(s string, env map[string]string) (string, error) {
	var err error
	out := composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		v := env[g[1]]
		switch {
		case v != "":
			return v
		case g[2] == ":-":
			return g[3]
		case g[2] == ":?":
			err = fmt.Errorf("required variable %s is missing a value: %s", g[1], g[3])
		}
		return v
	})
	return out, err
}

// natsServerOptions parses a service's command as nats-server would: the
// image's entrypoint runs nats-server with arguments that start with "-".
func natsServerOptions(t *testing.T, args []string) *server.Options {
	t.Helper()
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noop := func() {}
	opts, err := server.ConfigureOptions(fs, args, noop, noop, noop)
	if err != nil {
		t.Fatalf("nats-server %s: %v", strings.Join(args, " "), err)
	}
	return opts
}

func isNATS(s composeService) bool { return strings.HasPrefix(s.Image, "nats:") }
func isBridge(s composeService) bool {
	return s.Build != nil || strings.HasPrefix(s.Image, "bilibridge")
}

func TestComposeNATSRequiresALogin(t *testing.T) {
	services := readCompose(t)
	env := map[string]string{"NATS_USER": "ops", "NATS_PASSWORD": "0f9e-compose-password"}
	var nats, bridges int
	for name, s := range services {
		switch {
		case isNATS(s):
			nats++
			if !slices.Contains(s.Command, "--user") || !slices.Contains(s.Command, "--pass") {
				t.Errorf("%s: command %q lacks --user or --pass", name, s.Command)
				continue
			}
			args := make([]string, len(s.Command))
			for i, a := range s.Command {
				v, err := interpolate(a, env)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				args[i] = v
			}
			opts := natsServerOptions(t, args)
			if opts.Username != "ops" || opts.Password != env["NATS_PASSWORD"] {
				t.Errorf("%s: nats-server gets user %q and password %q from .env's NATS_USER and NATS_PASSWORD", name, opts.Username, opts.Password)
			}
			if opts.HTTPPort != 8222 {
				t.Errorf("%s: monitoring port %d, the healthcheck asks 8222", name, opts.HTTPPort)
			}
			// Without a password, compose must refuse rather than start a
			// NATS anyone may use (the user has a default).
			var refused bool
			for _, a := range s.Command {
				if _, err := interpolate(a, map[string]string{"NATS_USER": "ops"}); err != nil {
					refused = true
					if !strings.Contains(err.Error(), "NATS_PASSWORD") || strings.HasSuffix(err.Error(), ": ") {
						t.Errorf("%s: unhelpful message for a missing password: %v", name, err)
					}
				}
			}
			if !refused {
				t.Errorf("%s: starts without NATS_PASSWORD (want ${NATS_PASSWORD:?message})", name)
			}
		case isBridge(s):
			bridges++
			for _, k := range []string{"NATS_USER", "NATS_PASSWORD"} {
				v, err := interpolate(s.Environment[k], env)
				if err != nil || v != env[k] {
					t.Errorf("%s: environment %s=%q gives %q (%v), want .env's value", name, k, s.Environment[k], v, err)
				}
			}
		}
	}
	if nats < 4 || bridges < 3 {
		t.Errorf("found %d NATS services and %d bridges; the checks no longer see them all", nats, bridges)
	}
}

// TestComposePublishesNATSOnLoopbackOnly: the client port 4222 may be
// published on the host's loopback, nowhere else.
func TestComposePublishesNATSOnLoopbackOnly(t *testing.T) {
	for name, s := range readCompose(t) {
		for _, p := range s.Ports {
			hostIP, published, target := parsePort(t, p)
			if published != "4222" && target != "4222" {
				continue
			}
			if !config.IsLoopbackHost(hostIP) {
				t.Errorf("%s publishes NATS port 4222 on %q (host %s), want 127.0.0.1", name, hostIP, published)
			}
		}
	}
}

// parsePort reads a compose port, short ("[ip:][host:]container[/proto]")
// or long (target, published, host_ip) syntax. An empty host IP means
// every interface.
func parsePort(t *testing.T, n yaml.Node) (hostIP, published, target string) {
	t.Helper()
	if n.Kind == yaml.MappingNode {
		var long struct {
			Target    string `yaml:"target"`
			Published string `yaml:"published"`
			HostIP    string `yaml:"host_ip"`
		}
		if err := n.Decode(&long); err != nil {
			t.Fatal(err)
		}
		return long.HostIP, long.Published, long.Target
	}
	spec, _, _ := strings.Cut(n.Value, "/")
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return "", "", spec // a random host port on every interface
	}
	target, rest := spec[i+1:], spec[:i]
	if j := strings.LastIndex(rest, ":"); j >= 0 {
		return strings.Trim(rest[:j], "[]"), rest[j+1:], target
	}
	return "", rest, target
}

// dockerfileInstructions returns the Dockerfile's instructions, each as
// its fields, continued lines joined and comments left out.
func dockerfileInstructions(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	var line strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") {
			continue
		}
		// Join continued lines into one instruction.
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(text)
		if fields := strings.Fields(line.String()); len(fields) > 0 {
			out = append(out, fields)
		}
		line.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfileKeepsNATSOnLoopback: the image's embedded NATS is not
// reachable from outside the container, and 4222 is not exposed.
func TestDockerfileKeepsNATSOnLoopback(t *testing.T) {
	var listen string
	for _, fields := range dockerfileInstructions(t) {
		switch strings.ToUpper(fields[0]) {
		case "EXPOSE":
			for _, p := range fields[1:] {
				if strings.HasPrefix(p, "4222") {
					t.Errorf("the image exposes %s", p)
				}
			}
		case "ENV":
			for _, kv := range fields[1:] {
				if v, ok := strings.CutPrefix(kv, "NATS_LISTEN="); ok {
					listen = v
				}
			}
		}
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil || !config.IsLoopbackHost(host) {
		t.Errorf("the image sets NATS_LISTEN=%q, want a loopback address", listen)
	}
	if err := config.CheckNATSListen(listen, "", ""); err != nil {
		t.Errorf("the image's NATS_LISTEN: %v", err)
	}
}

// TestEnvExampleHasTheNATSLogin: .env is what compose substitutes from.
func TestEnvExampleHasTheNATSLogin(t *testing.T) {
	b, err := os.ReadFile("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nNATS_USER=", "\nNATS_PASSWORD=\n", "openssl rand"} {
		if !strings.Contains(string(b), want) {
			t.Errorf(".env.example lacks %q", want)
		}
	}
}

// TestEnvExampleLoads: a .env copied from .env.example, with only the
// NATS password it asks for filled in, is a configuration the bridge
// accepts (an empty TELEGRAM_CHAT_ID= in it once stopped every command).
func TestEnvExampleLoads(t *testing.T) {
	b, err := os.ReadFile("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATA_DIR", t.TempDir())
	set := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || strings.TrimSpace(k) != k {
			continue
		}
		if k == "NATS_PASSWORD" && v == "" {
			v = "a-password-from-openssl-rand"
		}
		t.Setenv(k, v)
		set++
	}
	if set < 5 {
		t.Fatalf("read only %d variables from .env.example", set)
	}
	if _, err := config.Load(); err != nil {
		t.Fatalf("a .env copied from .env.example: %v", err)
	}
}
