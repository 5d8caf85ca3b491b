package config_test

// Checks that docker-compose.yml, .env.example and the Dockerfile agree
// with the code and the repository: every variable they hand the bridge is
// one it reads, every file they name exists, and the health checks run the
// binary's health command.

import (
	"encoding/json"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/config"
)

// composeOnly are the variables of .env that bilibridge does not read:
// compose itself substitutes them into docker-compose.yml. Each needs its
// reason.
var composeOnly = map[string]string{
	"BILIBRIDGE_VERSION": "compose puts it into the image's build argument VERSION and tag; the binary has its version from -ldflags",
}

// envFileTemplates are the env_files that are not in the repository, and
// the file in the repository each is copied from.
var envFileTemplates = map[string]string{
	// The operator's configuration, with the secrets: never committed.
	".env": ".env.example",
}

// configVariables are the variables config.Config reads.
func configVariables() map[string]bool {
	known := map[string]bool{}
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		if key := typ.Field(i).Tag.Get("envconfig"); key != "" {
			known[key] = true
		}
	}
	return known
}

// envFiles are the paths of a service's env_file: a path, a list of
// paths, or a list of {path, required}.
func envFiles(t *testing.T, v any) []string {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				e = m["path"]
			}
			p, ok := e.(string)
			if !ok {
				t.Fatalf("env_file entry %v has no path", e)
			}
			out = append(out, p)
		}
		return out
	}
	t.Fatalf("env_file %v: neither a path nor a list", v)
	return nil
}

// envFileAssignment is a NAME= line of an env file, set or commented out:
// a commented-out variable is one to uncomment, so it must be real too.
var envFileAssignment = regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]*)=`)

// envFileVariables are the variables the repository's template of an
// env_file sets or offers to set.
func envFileVariables(t *testing.T, envFile string) []string {
	t.Helper()
	file := envFile
	if tmpl, ok := envFileTemplates[envFile]; ok {
		file = tmpl
	}
	b, err := os.ReadFile(path.Join("..", file))
	if err != nil {
		t.Fatalf("env_file %s: %v", envFile, err)
	}
	var vars []string
	for _, m := range envFileAssignment.FindAllStringSubmatch(string(b), -1) {
		vars = append(vars, m[1])
	}
	return vars
}

// TestComposeEnvironmentIsConfiguration: each variable compose gives a
// service, in environment: or through env_file, is one bilibridge reads
// (a misspelt one would be ignored without a word), or compose's own.
func TestComposeEnvironmentIsConfiguration(t *testing.T) {
	known := configVariables()
	var checked int
	for name, s := range readCompose(t) {
		for k := range s.Environment {
			checked++
			if !known[k] {
				t.Errorf("%s: environment sets %s, which bilibridge does not read", name, k)
			}
		}
		for _, f := range envFiles(t, s.EnvFile) {
			file := f
			if tmpl, ok := envFileTemplates[f]; ok {
				file = f + " (as " + tmpl + ")"
			}
			for _, k := range envFileVariables(t, f) {
				checked++
				if !known[k] && composeOnly[k] == "" {
					t.Errorf("%s: env_file %s sets %s, which bilibridge does not read; fix the name, or list it in composeOnly with the reason", name, file, k)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d variables; the test no longer sees the environment", checked)
	}
	compose, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for k := range composeOnly {
		if known[k] {
			t.Errorf("composeOnly lists %s, which bilibridge reads", k)
		}
		if !strings.Contains(string(compose), "${"+k) {
			t.Errorf("composeOnly lists %s, which docker-compose.yml does not use", k)
		}
	}
}

// TestComposeReferencesFilesThatExist: every file docker-compose.yml
// names (env files, the build context and Dockerfile, bind-mounted host
// paths, configs) is in the repository, and every named volume is
// declared.
func TestComposeReferencesFilesThatExist(t *testing.T) {
	f := readComposeFile(t)
	exists := func(what, p string) {
		t.Helper()
		if path.IsAbs(p) || strings.HasPrefix(p, "~") {
			t.Errorf("%s %s is a path outside the repository", what, p)
			return
		}
		if _, err := os.Stat(path.Join("..", p)); err != nil {
			t.Errorf("%s %s: %v", what, p, err)
		}
	}
	for name, s := range f.Services {
		for _, e := range envFiles(t, s.EnvFile) {
			if tmpl, ok := envFileTemplates[e]; ok {
				exists(name+": the template of env_file "+e+",", tmpl)
				if !gitIgnores(t, e) {
					t.Errorf("%s: env_file %s holds secrets but .gitignore does not list it", name, e)
				}
				continue
			}
			exists(name+": env_file", e)
		}
		if s.Build != nil {
			context, dockerfile := buildPaths(t, s.Build)
			exists(name+": build context", context)
			exists(name+": Dockerfile", path.Join(context, dockerfile))
		}
		for _, v := range s.Volumes {
			kind, source := volumeSource(t, v)
			switch {
			case kind == "bind":
				exists(name+": bind-mounted", source)
			case kind == "volume" && source != "":
				if _, ok := f.Volumes[source]; !ok {
					t.Errorf("%s: volume %s is not declared under volumes:", name, source)
				}
			}
		}
		for _, c := range s.Configs {
			source, ok := c.(string)
			if m, isMap := c.(map[string]any); isMap {
				source, ok = m["source"].(string)
			}
			if _, declared := f.Configs[source]; !ok || !declared {
				t.Errorf("%s: config %v is not declared under configs:", name, c)
			}
		}
	}
	for name, c := range f.Configs {
		exists("config "+name, c.File)
	}
}

// buildPaths reads build: a context path, or {context, dockerfile}.
func buildPaths(t *testing.T, build any) (context, dockerfile string) {
	t.Helper()
	context, dockerfile = ".", "Dockerfile"
	switch b := build.(type) {
	case string:
		context = b
	case map[string]any:
		if c, ok := b["context"].(string); ok {
			context = c
		}
		if d, ok := b["dockerfile"].(string); ok {
			dockerfile = d
		}
	default:
		t.Fatalf("build %v: neither a path nor a mapping", build)
	}
	return context, dockerfile
}

// volumeSource reads a service's volume, short ("source:target[:mode]")
// or long syntax: a bind mount of a host path (short syntax: one that
// starts with . / or ~) or a named volume ("" for an anonymous one).
func volumeSource(t *testing.T, v any) (kind, source string) {
	t.Helper()
	switch v := v.(type) {
	case string:
		source, _, ok := strings.Cut(v, ":")
		if !ok {
			return "volume", "" // anonymous
		}
		if strings.HasPrefix(source, ".") || strings.HasPrefix(source, "/") || strings.HasPrefix(source, "~") {
			return "bind", source
		}
		return "volume", source
	case map[string]any:
		kind, _ := v["type"].(string)
		source, _ := v["source"].(string)
		return kind, source
	}
	t.Fatalf("volume %v: neither a string nor a mapping", v)
	return "", ""
}

// gitIgnores reports whether .gitignore lists name as a line of its own.
func gitIgnores(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile("../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if l := strings.TrimSpace(line); l == name || l == "/"+name {
			return true
		}
	}
	return false
}

// TestHealthchecksRunTheHealthCommand: the image's HEALTHCHECK and every
// bridge's compose healthcheck run `bilibridge health` (the image has no
// shell, curl or wget), with the binary where the Dockerfile puts it.
func TestHealthchecksRunTheHealthCommand(t *testing.T) {
	var binary string
	var copiedTo, healthcheck []string
	for _, fields := range dockerfileInstructions(t) {
		switch strings.ToUpper(fields[0]) {
		case "ENTRYPOINT":
			binary = execForm(t, fields[1:])[0]
		case "COPY":
			copiedTo = append(copiedTo, fields[len(fields)-1])
		case "HEALTHCHECK":
			i := slices.Index(fields, "CMD")
			if i < 0 {
				t.Fatalf("HEALTHCHECK %q has no CMD", fields[1:])
			}
			healthcheck = execForm(t, fields[i+1:])
		}
	}
	if !slices.Contains(copiedTo, binary) {
		t.Fatalf("the Dockerfile's ENTRYPOINT %q is not a file it copies into the image", binary)
	}
	if want := []string{binary, "health"}; !slices.Equal(healthcheck, want) {
		t.Errorf("the Dockerfile's HEALTHCHECK runs %q, want %q", healthcheck, want)
	}
	var bridges int
	for name, s := range readCompose(t) {
		if !isBridge(s) {
			continue
		}
		bridges++
		if want := []string{"CMD", binary, "health"}; !slices.Equal(s.Healthcheck.Test, want) {
			t.Errorf("%s: healthcheck test %q, want %q", name, s.Healthcheck.Test, want)
		}
	}
	if bridges < 3 {
		t.Errorf("found %d bridges; the check no longer sees them all", bridges)
	}
}

// execForm reads an instruction's JSON (exec) form, ["bin", "arg"]: the
// image has no shell to run the other form with.
func execForm(t *testing.T, fields []string) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(strings.Join(fields, " ")), &args); err != nil || len(args) == 0 {
		t.Fatalf("%s is not the exec form [\"binary\", …] (the image has no shell): %v", strings.Join(fields, " "), err)
	}
	return args
}
