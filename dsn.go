package hasql

import (
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// A hasql DSN is "<registered inner driver name>:<inner DSN>". hasql's own
// settings ride inside the inner DSN's parameter section as hasql.<key>=<value>
// and are removed before the inner driver sees the DSN.

const keyPrefix = "hasql."

// dsnForm is where an inner DSN keeps its parameters.
type dsnForm uint8

const (
	formQuery    dsnForm = iota // "...?a=1&b=2": URL forms and any driver with a '?' section
	formKeyValue                // libpq "host=h port=5432 a=1"
	formMySQL                   // "user:pw@tcp(h)/db?a=1": the '?' after the last '/'
)

// setting is one hasql.<key>=<value> found in a DSN, key without the prefix.
type setting struct{ key, value string }

// splitDSN splits "<driver>:<inner DSN>".
func splitDSN(dsn string) (driverName, inner string, err error) {
	i := strings.IndexByte(dsn, ':')
	if i < 0 {
		return "", "", newError(ErrDSN, "DSN has no ':' between the inner driver name and its DSN (want e.g. \"pgx:postgres://host/db\")", nil)
	}
	if i == 0 {
		return "", "", newError(ErrDSN, "DSN names no inner driver before ':' (want e.g. \"mysql:user@tcp(host)/db\")", nil)
	}
	name := dsn[:i]
	if strings.ContainsAny(name, " /?@=&") && !slices.Contains(sql.Drivers(), name) {
		// ("pgx/v5" is a registered name.) Not quoted back: this is the DSN
		// itself without a driver prefix (e.g. "host=h password=pw:x"), and
		// may hold a password.
		return "", "", newError(ErrDSN, "DSN does not start with an inner driver name; want \"<driver>:<dsn>\", e.g. \"pgx:host=h dbname=d\"", nil)
	}
	return name, dsn[i+1:], nil
}

// looksKeyValue reports whether a DSN of an unknown driver is a libpq-style
// "key=value ..." list: its first word is a plain key followed by '=' (a URL
// or "file:x.db?..." has ':' there), and it has blanks between pairs or no
// '?' section ("name=x?a=1" is a '?' form).
func looksKeyValue(inner string) bool {
	s := strings.Trim(inner, " \t\n\r\f\v")
	if strings.Contains(s, "?") && !strings.ContainsAny(s, " \t\n\r\f\v") {
		return false
	}
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] == '.' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > 0 && s[i] >= '0' && s[i] <= '9') {
		i++
	}
	return i > 0 && strings.HasPrefix(strings.TrimLeft(s[i:], " \t\n\r\f\v"), "=")
}

// stripSettings removes every hasql.* parameter from an inner DSN and returns
// the DSN the inner driver should see, with the settings in the order given.
// Parameters that are not hasql's are left byte for byte as they were.
func stripSettings(form dsnForm, inner string) (string, []setting, error) {
	switch form {
	case formKeyValue:
		return stripKeyValue(inner)
	case formMySQL:
		slash := strings.LastIndexByte(inner, '/')
		if slash < 0 {
			return inner, nil, nil
		}
		q := strings.IndexByte(inner[slash:], '?')
		if q < 0 {
			return inner, nil, nil
		}
		return stripQuery(inner, slash+q)
	default:
		q := strings.IndexByte(inner, '?')
		if q < 0 {
			return inner, nil, nil
		}
		return stripQuery(inner, q)
	}
}

// stripQuery handles a '&'-separated section that starts after inner[q] == '?'
// and runs to the end or to a '#' fragment. Values are percent-decoded. ';' is
// part of a value, not a separator, unlike old versions of net/url.
func stripQuery(inner string, q int) (string, []setting, error) {
	section, fragment := inner[q+1:], ""
	if h := strings.IndexByte(section, '#'); h >= 0 {
		section, fragment = section[:h], section[h:]
	}
	var kept []string
	var found []setting
	for _, param := range strings.Split(section, "&") {
		name, value, _ := strings.Cut(param, "=")
		if !strings.HasPrefix(name, keyPrefix) {
			if param != "" {
				kept = append(kept, param)
			}
			continue
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return "", nil, newError(ErrDSN, fmt.Sprintf("DSN key %s: bad percent-encoding in its value", printable(name)), nil)
		}
		found = append(found, setting{key: name[len(keyPrefix):], value: v})
	}
	if len(found) == 0 {
		return inner, nil, nil
	}
	out := inner[:q]
	if len(kept) > 0 {
		out += "?" + strings.Join(kept, "&")
	}
	return out + fragment, found, nil
}

// stripKeyValue handles libpq's "key=value key2='quoted value'" form. The
// DSN comes back byte for byte as it was, minus each hasql.* pair and the
// blanks in front of it.
func stripKeyValue(inner string) (string, []setting, error) {
	const blanks = " \t\n\r\f\v"
	var b strings.Builder
	var found []setting
	kept := false        // b holds at least one pair
	lead, tail := "", "" // blanks before the first pair and after the last
	pos := 0             // where the previous pair ended
	for {
		s := strings.TrimLeft(inner[pos:], blanks)
		ws := inner[pos : len(inner)-len(s)]
		if pos == 0 {
			lead = ws
		}
		if s == "" {
			tail = ws
			break
		}
		start := len(inner) - len(s)
		eq := strings.IndexAny(s, "= \t\n\r\f\v")
		if eq <= 0 {
			return unparsedKeyValue(inner)
		}
		key := s[:eq]
		s = strings.TrimLeft(s[eq:], blanks)
		if !strings.HasPrefix(s, "=") {
			return unparsedKeyValue(inner)
		}
		s = strings.TrimLeft(s[1:], blanks)
		value, rest, ok := kvValue(s)
		if !ok {
			return unparsedKeyValue(inner)
		}
		pos = len(inner) - len(rest)
		if strings.HasPrefix(key, keyPrefix) {
			found = append(found, setting{key: key[len(keyPrefix):], value: value})
			continue
		}
		if kept {
			b.WriteString(ws)
		} else {
			b.WriteString(lead)
		}
		b.WriteString(inner[start:pos])
		kept = true
	}
	if len(found) == 0 {
		return inner, nil, nil
	}
	if kept {
		b.WriteString(tail)
	}
	return b.String(), found, nil
}

// unparsedKeyValue is the answer for a key=value DSN that does not tokenize:
// hand it to the inner driver untouched (it will name its own problem), unless
// hasql settings might be hidden in it, which must not silently go unseen.
func unparsedKeyValue(inner string) (string, []setting, error) {
	if strings.Contains(inner, keyPrefix) {
		return "", nil, newError(ErrDSN, "key=value DSN does not parse, so its hasql.* settings cannot be read (check quoting)", nil)
	}
	return inner, nil, nil
}

// kvValue reads one libpq value, quoted ('a \'b\' c') or bare (up to blank),
// with backslash escapes, and returns it with the rest of the string.
func kvValue(s string) (value, rest string, ok bool) {
	var b strings.Builder
	if strings.HasPrefix(s, "'") {
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 == len(s) {
					return "", "", false
				}
				i++
				b.WriteByte(s[i])
			case '\'':
				return b.String(), s[i+1:], true
			default:
				b.WriteByte(s[i])
			}
		}
		return "", "", false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			return b.String(), s[i:], true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "", true
}

// dsnSecrets returns the passwords an inner DSN contains, raw and decoded, so
// that no error text repeats them.
func dsnSecrets(form dsnForm, inner string) []string {
	var out []string
	add := func(s string) {
		if len(s) > 0 {
			out = append(out, s)
		}
	}
	switch form {
	case formKeyValue:
		kvPasswords(inner, add)
	case formMySQL:
		// user:password@net(addr)/db: the password may itself hold ':' '@' '/'.
		slash := strings.LastIndexByte(inner, '/')
		if slash < 0 {
			slash = len(inner)
		}
		if at := strings.LastIndexByte(inner[:slash], '@'); at >= 0 {
			if c := strings.IndexByte(inner[:at], ':'); c >= 0 {
				add(inner[c+1 : at])
			}
		}
	default:
		// scheme://user:password@host/...: anything between "//user:" and the
		// last '@' of the authority. A password that should have been
		// percent-encoded but was not ('/', '?', '#') moves the end of the
		// authority, and a parser may then quote the URL whole, so the
		// authority is also tried as libpq reads it (up to '/') and as if
		// such characters were part of the password.
		if i := strings.Index(inner, "://"); i >= 0 {
			rest := inner[i+3:]
			for _, cut := range []string{"/?#", "/", "?#", "#", ""} {
				auth := rest
				if j := strings.IndexAny(auth, cut); cut != "" && j >= 0 {
					auth = auth[:j]
				}
				at := strings.LastIndexByte(auth, '@')
				if at < 0 {
					continue
				}
				c := strings.IndexByte(auth[:at], ':')
				if c < 0 || strings.Contains(auth[:c], "/") {
					continue // no password, or the ':' is past the authority
				}
				raw := auth[c+1 : at]
				add(raw)
				if dec, err := url.PathUnescape(raw); err == nil && dec != raw {
					add(dec)
				}
			}
		}
		// Passwords given as query parameters (pgx's ?password=, sqlite's
		// _auth_pass=, ...).
		if q := strings.IndexByte(inner, '?'); q >= 0 {
			query := inner[q+1:]
			if h := strings.IndexByte(query, '#'); h >= 0 {
				query = query[:h]
			}
			for _, param := range strings.Split(query, "&") {
				name, value, ok := strings.Cut(param, "=")
				if n := strings.ToLower(name); !ok || !strings.Contains(n, "pass") && n != "pwd" {
					continue
				}
				add(value)
				if dec, err := url.QueryUnescape(value); err == nil && dec != value {
					add(dec)
				}
			}
		}
	}
	return dedupe(out)
}

// kvPasswords passes add each value of a "password" key in a key=value DSN
// (sslpassword too), decoded and as written.
func kvPasswords(inner string, add func(string)) {
	const blanks = " \t\n\r\f\v"
	s := inner
	for {
		i := strings.Index(s, "password")
		if i < 0 {
			return
		}
		s = strings.TrimLeft(s[i+len("password"):], blanks)
		if !strings.HasPrefix(s, "=") {
			continue
		}
		vs := strings.TrimLeft(s[1:], blanks)
		v, rest, ok := kvValue(vs)
		if !ok {
			// Unterminated: the rest of the DSN may all be the password.
			add(strings.TrimPrefix(vs, "'"))
			continue
		}
		add(v)
		raw := vs[:len(vs)-len(rest)]
		if len(raw) >= 2 && raw[0] == '\'' {
			raw = raw[1 : len(raw)-1]
		}
		add(raw)
		s = rest
	}
}

// dedupe drops repeated strings, keeping the first of each.
func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
