package api

import (
	"net/http"
	"net/url"
	"strings"
)

// query is a request's query parameters, read as url.Values reads
// r.URL.Query(): the first value of a name, unescaped, with the pairs
// url.ParseQuery drops (a semicolon, a bad escape) skipped. It scans the raw
// query at each lookup instead of building the map: the hot reads ask a
// short query for one to three names, and the map cost 3-4 allocations per
// request. A query with many parameters is parsed by url.ParseQuery after
// all, so that its limit on their number applies as it did.
type query struct {
	raw    string
	values url.Values // parsed: a query of maxScannedParams parameters or more
}

// maxScannedParams is far below url's limit on the number of parameters
// (10,000 unless GODEBUG urlmaxqueryparams lowers it), so a scanned query
// is one url.ParseQuery would have parsed too.
const maxScannedParams = 16

func queryOf(r *http.Request) query { return parseQuery(r.URL.RawQuery) }

func parseQuery(raw string) query {
	if strings.Count(raw, "&") >= maxScannedParams {
		v, _ := url.ParseQuery(raw) // malformed pairs dropped, as r.URL.Query() does
		return query{values: v}
	}
	return query{raw: raw}
}

// lookup returns the first value of name and whether the query has it.
func (q query) lookup(name string) (string, bool) {
	if q.values != nil {
		vs, ok := q.values[name]
		if !ok {
			return "", false
		}
		return vs[0], true
	}
	for rest := q.raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		// QueryUnescape returns its argument, unallocated, when there is
		// nothing to unescape: the usual case.
		key, err := url.QueryUnescape(key)
		if err != nil || key != name {
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			continue // dropped by url.ParseQuery: a later pair may hold the name
		}
		return value, true
	}
	return "", false
}

// Get is url.Values.Get.
func (q query) Get(name string) string {
	v, _ := q.lookup(name)
	return v
}

// Has is url.Values.Has.
func (q query) Has(name string) bool {
	_, ok := q.lookup(name)
	return ok
}
