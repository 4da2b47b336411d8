// Package config is the configuration of the node daemon dhtd: its schema,
// defaults, file formats, validation and what SIGHUP reloads. It knows
// nothing of flags: dhtd builds its configuration as
//
//	cfg, err := config.Load(path) // Default(), then the file
//	// ... set the fields given as flags ...
//	err = cfg.Validate()
//
// and reports the error, which is one line naming the key, as it is.
//
// # TOML
//
// The main format. Every key, its unit and its default are listed in
// config.toml.example at the repository root and on the Config fields.
// Durations are Go duration strings ("1h30m", "500ms"); a bare number is an
// error. Decoding is strict: an unknown key, a value of the wrong type or a
// bad duration is an error naming the key, e.g.
//
//	/etc/durachord/config.toml: ring.stabilise_interval: unknown key
//
// # INI (course format)
//
// A file whose name ends in ".ini" is read as the INI file shared by the
// modules of the course setup:
//
//	; global section: hostkey is ignored (see below)
//	hostkey = /etc/course/hostkey.pem
//
//	[dht]
//	p2p_address = 127.0.0.1:6001
//	api_address = 127.0.0.1:7001
//	bootstrap   = 127.0.0.1:6002, 127.0.0.1:6003
//	tls_dir     = /etc/durachord/tls
//	ring.max_hops = 16
//
//	[gossip]  ; other modules' sections are skipped
//	degree = 30
//
// Lines are "KEY = VALUE" (split at the first "="), "[SECTION]" headers, or
// comments starting with ";" or "#" (whole lines, or after a section header; a
// ";" after a value is part of the value). Keys are case-insensitive; a value may be wrapped in
// one pair of quotes. Only the [dht] section is read, and in it every key of
// the TOML file is accepted, table keys in dotted form ("api.max_conns").
// bootstrap takes addresses separated by commas or spaces, and may be
// repeated to add more. Inside [dht] an unknown key, a key set twice or a
// line that is not KEY = VALUE is an error; a second [dht] section is an
// error. The global section and all other sections are not ours and are
// skipped without checks. The course's global "hostkey" (an RSA key that
// defines the peer identity there) is ignored: here the node's identity is
// the SHA-256 of its certificate's public key, and the certificate, its key
// and the cluster CA come from tls_dir (ca.crt, node.crt, node.key).
//
// # Reload
//
// On SIGHUP dhtd loads the file again, validates it (with its flags applied
// again) and calls Reload: the keys in ReloadableKeys (log_level, tls_dir,
// hmac_keys and the [api] limits) take effect, and dhtd reads the files they
// name again; any other key that changed is reported
// and keeps its running value until a restart.
package config
