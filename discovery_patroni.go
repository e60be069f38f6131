package hasql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// patroniSource reads Patroni's GET /cluster: every member with its role
// ("leader" is the primary; "replica", "sync_standby", "standby_leader"...
// are standbys) and state ("running" or "streaming" serve work; "stopped",
// "starting", "crashed", "creating replica" do not). The REST APIs asked,
// all at once (askPatroni), are hasql.discover_url, the members' own REST
// addresses from the last answer and port 8008 of each host in the list.
type patroniSource struct{}

type patroniCluster struct {
	Members []struct {
		Name   string `json:"name"`
		Role   string `json:"role"`
		State  string `json:"state"`
		Host   string `json:"host"`
		Port   int    `json:"port"`
		APIURL string `json:"api_url"`
	} `json:"members"`
}

func (patroniSource) fetch(ctx context.Context, c *Connector) ([]member, error) {
	var urls []string
	if u := c.cfg.discovery.URL; u != "" {
		urls = append(urls, strings.TrimRight(u, "/"))
	}
	urls = append(urls, c.disc.apis...)
	c.hosts.mu.Lock()
	for _, h := range c.hosts.hosts {
		if host, _, err := net.SplitHostPort(h.addr); err == nil {
			urls = append(urls, "http://"+net.JoinHostPort(host, "8008"))
		}
	}
	c.hosts.mu.Unlock()
	seen := map[string]bool{}
	uniq := urls[:0]
	for _, u := range urls {
		if !seen[u] && len(uniq) < maxPatroniAsks {
			seen[u] = true
			uniq = append(uniq, u)
		}
	}
	ms, err := askPatroni(ctx, c.disc.http, uniq)
	if err != nil {
		return nil, fmt.Errorf("hasql: Patroni discovery: no REST API answered: %w", err)
	}
	var apis []string
	for _, m := range ms {
		if m.api != "" {
			apis = append(apis, m.api)
		}
	}
	c.disc.apis = apis // only the discovery goroutine reads and writes it
	return ms, nil
}

// maxPatroniAsks bounds how many REST APIs one refresh asks at once.
const maxPatroniAsks = 8

// askPatroni asks every REST API in urls at once, so that a member that
// does not answer (a host that is down, whose packets vanish) costs no
// time: the first answer naming a usable leader wins at once; else, once
// all have answered or failed, the first answer in urls' order; the other
// requests are then cancelled.
func askPatroni(ctx context.Context, hc *http.Client, urls []string) ([]member, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		i   int
		ms  []member
		err error
	}
	answers := make(chan answer, len(urls))
	for i, u := range urls {
		go func() {
			ms, err := patroniMembers(ctx, hc, u)
			answers <- answer{i, ms, err}
		}()
	}
	got := make([][]member, len(urls))
	var errs []error
	for range urls {
		a := <-answers
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		for _, m := range a.ms {
			if m.usable && m.role == rolePrimary {
				return a.ms, nil
			}
		}
		got[a.i] = a.ms
	}
	for _, ms := range got {
		if ms != nil {
			return ms, nil
		}
	}
	return nil, errors.Join(errs...)
}

// patroniMembers asks one REST API for the members.
func patroniMembers(ctx context.Context, hc *http.Client, base string) ([]member, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/cluster: HTTP %d", base, resp.StatusCode)
	}
	return parsePatroniCluster(body)
}

// parsePatroniCluster turns a /cluster answer into members.
func parsePatroniCluster(body []byte) ([]member, error) {
	var pc patroniCluster
	if err := json.Unmarshal(body, &pc); err != nil {
		return nil, fmt.Errorf("Patroni /cluster: %v", err)
	}
	var out []member
	for _, m := range pc.Members {
		if m.Host == "" || m.Port == 0 {
			continue
		}
		r := roleStandby
		switch m.Role {
		case "leader", "master", "primary":
			r = rolePrimary
		}
		api := strings.TrimSuffix(m.APIURL, "/patroni")
		out = append(out, member{
			addr:   net.JoinHostPort(m.Host, strconv.Itoa(m.Port)),
			role:   r,
			usable: m.State == "running" || m.State == "streaming",
			api:    api,
		})
	}
	if len(out) == 0 {
		return nil, errors.New("Patroni /cluster lists no members")
	}
	return out, nil
}

// validateDiscoverURL checks hasql.discover_url: "" or an http(s) URL with a
// host.
func validateDiscoverURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http(s) URL of Patroni's REST API, e.g. http://10.0.0.1:8008")
	}
	return nil
}
