package app_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// The sign-in through a third-party provider's own pages, shared by the
// tests against real providers (TestHydra; TestDex behind build tag dex).

var (
	formTag     = regexp.MustCompile(`(?is)<form[^>]*\smethod="post"[^>]*\saction="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`(?is)<input[^>]*\stype="hidden"[^>]*>`)
	attrName    = regexp.MustCompile(`(?is)\sname="([^"]*)"`)
	attrValue   = regexp.MustCompile(`(?is)\svalue="([^"]*)"`)
)

// signInAtProvider starts a sign-in at notifyd (base) and follows it as a
// browser does through the provider's redirects and pages, posting the
// first login form it meets (its hidden fields, plus creds) once, until the
// provider sends the browser back to notifyd's callback; it then calls the
// callback and checks that it signs in. It returns the scopes notifyd asked
// the provider for. With creds nil the sign-in must be silent: a provider
// that still knows the browser's user shows no page.
func (b *browser) signInAtProvider(base string, creds url.Values) []string {
	b.t.Helper()
	resp, body := b.do("GET", base+"/auth/login?redirect=%2Ftest-notifications", nil, nil)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	back := b.authorize(authURL, base+"/auth/callback", creds)
	if resp, body := b.finish(back); resp.StatusCode != http.StatusFound {
		b.t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	return strings.Fields(authURL.Query().Get("scope"))
}

// authorize follows an authorization request at a provider until it
// redirects to callback, and returns that redirect without following it.
func (b *browser) authorize(authURL *url.URL, callback string, creds url.Values) *url.URL {
	b.t.Helper()
	next, posted := authURL, false
	for range 20 {
		resp, body := b.do("GET", next.String(), nil, nil)
		if resp.StatusCode == http.StatusOK {
			if posted {
				b.t.Fatalf("the provider showed a page again after the login form was posted:\n%s", body)
			}
			if creds == nil {
				b.t.Fatalf("the provider showed a page to a browser whose user it knows (%s):\n%s", next, body)
			}
			action, form := loginForm(body)
			if action == "" {
				b.t.Fatalf("no login form on the provider's page %s:\n%s", next, body)
			}
			for k, v := range creds {
				form[k] = v
			}
			post, _ := next.Parse(action)
			resp, body = b.do("POST", post.String(), form, nil)
			posted = true
		}
		if resp.StatusCode/100 != 3 {
			b.t.Fatalf("provider at %s: %d %s", next, resp.StatusCode, body)
		}
		loc, err := next.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.t.Fatalf("provider's redirect %q: %v", resp.Header.Get("Location"), err)
		}
		if strings.HasPrefix(loc.String(), callback+"?") {
			return loc
		}
		next = loc
	}
	b.t.Fatalf("the provider did not send the browser to %s within 20 steps", callback)
	return nil
}

// loginForm is the action of a page's first POST form and its hidden fields.
func loginForm(page string) (action string, hidden url.Values) {
	m := formTag.FindStringSubmatch(page)
	if m == nil {
		return "", nil
	}
	hidden = url.Values{}
	for _, input := range hiddenInput.FindAllString(page, -1) {
		name, value := attrName.FindStringSubmatch(input), attrValue.FindStringSubmatch(input)
		if name != nil {
			v := ""
			if value != nil {
				v = html.UnescapeString(value[1])
			}
			hidden.Add(html.UnescapeString(name[1]), v)
		}
	}
	return html.UnescapeString(m[1]), hidden
}
