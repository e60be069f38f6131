package hasql

import (
	"fmt"
	"net/url"
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
	if strings.ContainsAny(name, " /?@=&") {
		return "", "", newError(ErrDSN, fmt.Sprintf("DSN starts with %s, which is not a driver name; want \"<driver>:<dsn>\"", quoteValue(printable(name))), nil)
	}
	return name, dsn[i+1:], nil
}

// formOf tells where the parameters of an inner DSN are, from the dialect and
// the DSN's shape.
func formOf(d dialect, inner string) dsnForm {
	switch d {
	case dialectMySQL:
		return formMySQL
	case dialectPgx:
		if strings.HasPrefix(inner, "postgres://") || strings.HasPrefix(inner, "postgresql://") {
			return formQuery
		}
		return formKeyValue
	}
	return formQuery
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

// stripKeyValue handles libpq's "key=value key2='quoted value'" form.
func stripKeyValue(inner string) (string, []setting, error) {
	var kept []string
	var found []setting
	s := inner
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			break
		}
		start := s
		eq := strings.IndexAny(s, "= \t\n\r\f\v")
		if eq <= 0 {
			return unparsedKeyValue(inner)
		}
		key := s[:eq]
		s = strings.TrimLeft(s[eq:], " \t\n\r\f\v")
		if !strings.HasPrefix(s, "=") {
			return unparsedKeyValue(inner)
		}
		s = strings.TrimLeft(s[1:], " \t\n\r\f\v")
		value, rest, ok := kvValue(s)
		if !ok {
			return unparsedKeyValue(inner)
		}
		s = rest
		if strings.HasPrefix(key, keyPrefix) {
			found = append(found, setting{key: key[len(keyPrefix):], value: value})
		} else {
			kept = append(kept, strings.TrimRight(start[:len(start)-len(rest)], " \t\n\r\f\v"))
		}
	}
	return strings.Join(kept, " "), found, nil
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
		s := inner
		for {
			i := strings.Index(s, "password")
			if i < 0 {
				break
			}
			s = strings.TrimLeft(s[i+len("password"):], " \t\n\r\f\v")
			if !strings.HasPrefix(s, "=") {
				continue
			}
			if v, rest, ok := kvValue(strings.TrimLeft(s[1:], " \t\n\r\f\v")); ok {
				add(v)
				s = rest
			}
		}
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
		// last '@' of the authority.
		if i := strings.Index(inner, "://"); i >= 0 {
			auth := inner[i+3:]
			if j := strings.IndexAny(auth, "/?#"); j >= 0 {
				auth = auth[:j]
			}
			if at := strings.LastIndexByte(auth, '@'); at >= 0 {
				if c := strings.IndexByte(auth[:at], ':'); c >= 0 {
					raw := auth[c+1 : at]
					add(raw)
					if dec, err := url.PathUnescape(raw); err == nil && dec != raw {
						add(dec)
					}
				}
			}
		}
	}
	return out
}
