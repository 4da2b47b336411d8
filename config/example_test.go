package config

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const examplePath = "../config.toml.example"

// exampleEntry is one key of the example with the comment block above it.
type exampleEntry struct {
	key     string
	value   string // the literal the line sets
	comment string
}

// exampleEntries reads the example line by line: tables, keys and the
// comment lines directly above each key (or above its table header, for the
// first key of a table, which is not used).
func exampleEntries(t *testing.T) []exampleEntry {
	t.Helper()
	f, err := os.Open(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		entries []exampleEntry
		table   string
		comment []string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			comment = nil
		case strings.HasPrefix(line, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		case strings.HasPrefix(line, "["):
			table = strings.Trim(line, "[]") + "."
			comment = nil
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: unexpected line %q", examplePath, line)
			}
			entries = append(entries, exampleEntry{key: table + strings.TrimSpace(k), value: strings.TrimSpace(v), comment: strings.Join(comment, " ")})
			comment = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestExampleDecodesStrictly(t *testing.T) {
	// Load rejects unknown keys and bad values, so a clean Load is a strict decode.
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s) = %v", examplePath, err)
	}
	// BurntSushi's own decoder into the struct must agree: nothing undecoded.
	var direct Config
	md, err := toml.DecodeFile(examplePath, &direct)
	if err != nil {
		t.Fatalf("toml.DecodeFile(%s) = %v", examplePath, err)
	}
	if und := md.Undecoded(); len(und) != 0 {
		t.Errorf("toml.DecodeFile(%s): undecoded keys %v", examplePath, und)
	}
	if diff := cfg.Changed(direct); len(diff) != 0 {
		t.Errorf("Load and toml.DecodeFile disagree on %v", diff)
	}
	// With its files pointed at existing ones, the example is a valid config.
	files := withFiles(t)
	cfg.TLSDir, cfg.HMACKeys = files.TLSDir, files.HMACKeys
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate(example) = %v; want nil", err)
	}
}

func TestExampleSetsEveryKey(t *testing.T) {
	var doc map[string]any
	if _, err := toml.DecodeFile(examplePath, &doc); err != nil {
		t.Fatal(err)
	}
	var set []string
	var flatten func(prefix string, m map[string]any)
	flatten = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				flatten(prefix+k+".", sub)
				continue
			}
			set = append(set, prefix+k)
		}
	}
	flatten("", doc)
	slices.Sort(set)
	want := Keys()
	slices.Sort(want)
	if !slices.Equal(set, want) {
		t.Fatalf("%s sets keys %v; want exactly the keys of Config %v", examplePath, set, want)
	}
}

func TestExampleDefaults(t *testing.T) {
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	got, want := cfg.fields(), def.fields()
	entries := exampleEntries(t)
	if len(entries) != len(Keys()) {
		t.Fatalf("%s: found %d key lines; want %d", examplePath, len(entries), len(Keys()))
	}
	defaults := 0
	for _, e := range entries {
		switch {
		case strings.Contains(e.comment, "Default:"):
			defaults++
			// The default the comment states is the value the line sets.
			_, stated, _ := strings.Cut(e.comment, "Default:")
			stated = strings.TrimSuffix(strings.TrimSpace(stated), ".")
			if stated != e.value && !strings.HasPrefix(stated, e.value+" ") && !strings.HasPrefix(stated, e.value+".") {
				t.Errorf("%s: %s = %s, but its comment says Default: %s", examplePath, e.key, e.value, stated)
			}
			if !slices.Contains(cfg.Changed(def), e.key) {
				continue
			}
			t.Errorf("%s: %s = %v, but its comment says Default and Default() has %v", examplePath, e.key, got[e.key], want[e.key])
		case strings.Contains(e.comment, "Required, no default."):
		default:
			t.Errorf("%s: the comment of %s states neither its default nor that it is required: %q", examplePath, e.key, e.comment)
		}
	}
	if defaults != len(Keys())-1 {
		t.Errorf("%s: %d keys document a default; want every key but p2p_address (%d)", examplePath, defaults, len(Keys())-1)
	}
}

func TestReferenceDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range Keys() {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(doc), "| `"+leaf+"` |") {
			t.Errorf("docs/configuration.md has no table row for %s", key)
		}
	}
}
