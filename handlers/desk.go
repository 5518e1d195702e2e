package handlers

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/packledger/packledger/domain"
)

// The web desk: server-rendered pages for the four roles at /, over the
// same commands and read models as the JSON API. Sign-in takes a user's
// token once and gives a session cookie (HttpOnly, SameSite=Strict);
// every form carries the session's CSRF token, and a post without it is
// refused before anything is decided. Every write works without
// JavaScript: a form posts, the server answers with a redirect to the
// page that shows the result.

//go:embed desk
var deskFiles embed.FS

const (
	sessionCookie = "pl_session"
	langCookie    = "pl_lang"
	// preCookie holds the CSRF token of the sign-in form, which is posted
	// before there is a session to hold one.
	preCookie = "pl_signin"
	// sessionTTL is how long a sign-in lasts: a working day and its
	// evening close, not a week.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept; the oldest go first.
	maxSessions = 10_000
	// maxForm bounds a form's body, as maxBody bounds the API's.
	maxForm = 64 << 10
)

// session is one signed-in user on one browser.
type session struct {
	id, csrf string
	userID   string
	// tokenSHA256 is the user's token when they signed in: a new token in
	// the users file ends the sessions of the old one.
	tokenSHA256 string
	expires     time.Time
}

// sessions are the desk's sessions, in memory: a restart signs everyone
// out, which costs a till one sign-in.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func (ss *sessions) create(u User, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, id)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest *session
		for _, s := range ss.m {
			if oldest == nil || s.expires.Before(oldest.expires) {
				oldest = s
			}
		}
		delete(ss.m, oldest.id)
	}
	s := &session{id: rand.Text(), csrf: rand.Text(), userID: u.ID, tokenSHA256: u.TokenSHA256, expires: now.Add(sessionTTL)}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(id string, now time.Time) (*session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok || now.After(s.expires) {
		delete(ss.m, id)
		return nil, false
	}
	return s, true
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// desk is the web desk's state: its parsed pages and its sessions.
type desk struct {
	pages    map[string]*template.Template
	sessions *sessions
	static   http.Handler
}

// deskPages are the page templates, each parsed with the layout.
var deskPages = []string{"signin", "error", "find", "package", "deduct", "sell", "queue", "pay", "receipt", "contract", "close",
	"plans", "refund", "liability", "timeline", "audit", "verify", "balances"}

// deskFuncs are the few functions the pages use beyond their view's
// methods.
var deskFuncs = template.FuncMap{
	"sub":  func(a, b int) int { return a - b },
	"list": func(s ...string) []string { return s },
}

func newDesk() *desk {
	d := &desk{pages: map[string]*template.Template{}, sessions: newSessions()}
	for _, p := range deskPages {
		d.pages[p] = template.Must(template.New("layout.html").Funcs(deskFuncs).ParseFS(deskFiles, "desk/layout.html", "desk/"+p+".html"))
	}
	static, err := fs.Sub(deskFiles, "desk/static")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	d.static = http.StripPrefix("/desk/static/", http.FileServerFS(static))
	return d
}

// deskRoutes adds the desk's routes to mux.
func (s *Server) deskRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.deskHome)
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("POST /signin", s.signin)
	mux.HandleFunc("POST /signout", s.deskPage(s.signout, anyRole...))
	mux.HandleFunc("GET /lang", s.switchLang)
	mux.Handle("GET /desk/static/", s.desk.static)

	mux.HandleFunc("GET /desk/find", s.deskPage(s.findPage, anyRole...))
	mux.HandleFunc("GET /desk/packages/{id}", s.deskPage(s.packagePage, anyRole...))
	mux.HandleFunc("GET /desk/packages/{id}/deduct", s.deskPage(s.deductPage, advisorOnly...))
	mux.HandleFunc("POST /desk/packages/{id}/deduct", s.deskPage(s.deduct, advisorOnly...))
	mux.HandleFunc("GET /desk/sell", s.deskPage(s.sellPage, advisorOnly...))
	mux.HandleFunc("POST /desk/sell", s.deskPage(s.sellForm, advisorOnly...))

	mux.HandleFunc("GET /desk/queue", s.deskPage(s.queuePage, cashierOnly...))
	mux.HandleFunc("GET /desk/packages/{id}/pay", s.deskPage(s.payPage, cashierOnly...))
	mux.HandleFunc("POST /desk/packages/{id}/pay", s.deskPage(s.pay, cashierOnly...))
	mux.HandleFunc("GET /desk/packages/{id}/receipts/{pid}", s.deskPage(s.receiptPage, anyRole...))
	mux.HandleFunc("GET /desk/packages/{id}/contract", s.deskPage(s.contractPage, anyRole...))
	mux.HandleFunc("GET /desk/close", s.deskPage(s.closePage, closeRoles...))

	mux.HandleFunc("GET /desk/plans", s.deskPage(s.plansPage, managerOnly...))
	mux.HandleFunc("POST /desk/plans/preview", s.deskPage(s.planPreview, managerOnly...))
	mux.HandleFunc("POST /desk/plans", s.deskPage(s.definePlanForm, managerOnly...))
	mux.HandleFunc("POST /desk/plans/{code}/retire", s.deskPage(s.retirePlanForm, managerOnly...))
	mux.HandleFunc("GET /desk/packages/{id}/refund", s.deskPage(s.refundPage, managerOnly...))
	mux.HandleFunc("POST /desk/packages/{id}/refund", s.deskPage(s.refundForm, managerOnly...))
	mux.HandleFunc("POST /desk/packages/{id}/redemptions/{rid}/reverse", s.deskPage(s.reverseForm, managerOnly...))
	mux.HandleFunc("POST /desk/packages/{id}/payments/{pid}/void", s.deskPage(s.voidForm, managerOnly...))
	mux.HandleFunc("GET /desk/reports/liability", s.deskPage(s.liabilityPage, historyRoles...))

	mux.HandleFunc("GET /desk/packages/{id}/timeline", s.deskPage(s.timelinePage, historyRoles...))
	mux.HandleFunc("GET /desk/audit", s.deskPage(s.auditPage, auditorOnly...))
	mux.HandleFunc("GET /desk/audit/verify", s.deskPage(s.verifyPage, auditorOnly...))
	mux.HandleFunc("GET /desk/audit/balances", s.deskPage(s.balancesPage, auditorOnly...))
	mux.HandleFunc("GET /desk/export/verify.json", s.deskPage(s.export("verify.json", s.verifyLedger), auditorOnly...))
	mux.HandleFunc("GET /desk/export/balances.json", s.deskPage(s.export("balances.json", s.balancesAsOf), auditorOnly...))
	mux.HandleFunc("GET /desk/export/liability.json", s.deskPage(s.export("liability.json", s.fromModel(s.liabilityReport)), historyRoles...))
	mux.HandleFunc("GET /desk/export/packages/{id}/history.json", s.deskPage(s.export("history.json", s.history), historyRoles...))
}

// deskReq is one request to a page of a signed-in user.
type deskReq struct {
	w    http.ResponseWriter
	r    *http.Request
	user User
	sess *session
	lang lang
}

// deskPage wraps a page with the session and the role matrix: no session
// sends a GET to sign in and refuses a POST; a role not listed gets 403;
// a POST whose CSRF token is not the session's gets 403 and nothing is
// decided.
func (s *Server) deskPage(h func(*deskReq), roles ...domain.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l := langOf(r)
		u, sess, ok := s.sessionOf(r)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !ok || r.ParseForm() != nil || !sameToken(r.PostForm.Get("csrf"), sess.csrf) {
				s.deskError(w, l, nil, http.StatusForbidden, "err.csrf")
				return
			}
		}
		if !ok {
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		dr := &deskReq{w: w, r: r, user: u, sess: sess, lang: l}
		permitted := false
		for _, role := range roles {
			permitted = permitted || u.Role == role
		}
		if !permitted {
			s.deskError(w, l, dr, http.StatusForbidden, "err.forbidden")
			return
		}
		h(dr)
	}
}

// sessionOf is the request's session and its user, if both still hold.
func (s *Server) sessionOf(r *http.Request) (User, *session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return User{}, nil, false
	}
	sess, ok := s.desk.sessions.get(c.Value, time.Now())
	if !ok {
		return User{}, nil, false
	}
	for _, u := range s.users() {
		if u.ID == sess.userID && u.TokenSHA256 == sess.tokenSHA256 {
			if u.Store == "" {
				u.Store = s.cfg.DefaultStore
			}
			return u, sess, true
		}
	}
	s.desk.sessions.end(sess.id) // the user or their token is gone
	return User{}, nil, false
}

func sameToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func langOf(r *http.Request) lang {
	if c, err := r.Cookie(langCookie); err == nil {
		return parseLang(c.Value)
	}
	return langZH
}

// cookie is one of the desk's cookies: for this site's pages only, never
// sent along from another site's page or readable by script, and sent
// over TLS only when the desk is served over TLS (Config.SecureCookies
// says so behind a proxy that ends TLS).
func (s *Server) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.cfg.SecureCookies}
}

// home is where a role starts: the cashier at the queue, the auditor at
// the audit, the others at reception, finding the car.
func home(role domain.Role) string {
	switch role {
	case domain.RoleCashier:
		return "/desk/queue"
	case domain.RoleAuditor:
		return "/desk/audit"
	}
	return "/desk/find"
}

func (s *Server) deskHome(w http.ResponseWriter, r *http.Request) {
	if u, _, ok := s.sessionOf(r); ok {
		http.Redirect(w, r, home(u.Role), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// localPath is next if it is a path of this site, else "". Browsers drop
// tabs and newlines from an address and read a backslash as a slash, so
// "/\t/evil.example" would leave the site: no control character and no
// backslash is let through, and what goes back out is next as parsed.
func localPath(next string) string {
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f || next[i] == '\\' {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return ""
	}
	return u.RequestURI()
}

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	s.renderSignin(w, r, http.StatusOK, "")
}

// renderSignin shows the sign-in form, with a CSRF token of its own held
// in a cookie until the form comes back.
func (s *Server) renderSignin(w http.ResponseWriter, r *http.Request, status int, problem string) {
	token := rand.Text()
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) >= 16 {
		token = c.Value
	}
	http.SetCookie(w, s.cookie(r, preCookie, token, 3600))
	v := s.view(langOf(r), nil, "signin.title")
	v.CSRF = token
	v.Data = map[string]string{"Next": localPath(r.FormValue("next"))}
	if problem != "" {
		v.Errors = map[string]string{"token": text(v.Lang, problem)}
	}
	s.render(w, status, "signin", v)
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	c, err := r.Cookie(preCookie)
	if err != nil || r.ParseForm() != nil || !sameToken(r.PostForm.Get("csrf"), c.Value) {
		s.deskError(w, langOf(r), nil, http.StatusForbidden, "err.csrf")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		s.renderSignin(w, r, http.StatusBadRequest, "signin.required")
		return
	}
	u, err := s.userByToken(token)
	if err != nil {
		s.renderSignin(w, r, http.StatusUnauthorized, "signin.bad")
		return
	}
	if old, err := r.Cookie(sessionCookie); err == nil {
		s.desk.sessions.end(old.Value) // one sign-in, one session
	}
	sess := s.desk.sessions.create(u, time.Now())
	http.SetCookie(w, s.cookie(r, sessionCookie, sess.id, int(sessionTTL/time.Second)))
	http.SetCookie(w, s.cookie(r, preCookie, "", -1))
	next := localPath(r.PostForm.Get("next"))
	if next == "" {
		next = home(u.Role)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) signout(d *deskReq) {
	s.desk.sessions.end(d.sess.id)
	http.SetCookie(d.w, s.cookie(d.r, sessionCookie, "", -1))
	http.Redirect(d.w, d.r, "/signin", http.StatusSeeOther)
}

// switchLang sets the desk's language and goes back to the page it was
// asked from. A GET is enough: the language changes nothing in the ledger.
func (s *Server) switchLang(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, s.cookie(r, langCookie, string(parseLang(r.URL.Query().Get("to"))), 365*24*3600))
	back := localPath(r.URL.Query().Get("back"))
	if back == "" {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// view is what every page's template is given.
type view struct {
	Lang   lang
	User   *User
	CSRF   string
	Title  string
	Nav    []navItem
	Path   string // of the page, for the language switch to come back to
	Flash  string
	Errors map[string]string // by field: what was wrong, in words
	Form   url.Values        // what was typed, shown again
	Data   any
	tz     *time.Location
}

type navItem struct {
	Href, Label string
	Current     bool
}

// T is the catalog's text of key in the page's language.
func (v view) T(key string, args ...any) string { return text(v.Lang, key, args...) }

// Yuan writes an amount: ¥2,448.00.
func (v view) Yuan(m domain.Money) string { return yuan(m) }

// When writes an instant in the dealer's time zone.
func (v view) When(t any) string {
	switch t := t.(type) {
	case time.Time:
		return clockTime(t, v.tz)
	case *time.Time:
		if t != nil {
			return clockTime(*t, v.tz)
		}
	}
	return ""
}

// Day writes an instant's business day.
func (v view) Day(t any) string {
	switch t := t.(type) {
	case time.Time:
		return day(t, v.tz)
	case *time.Time:
		if t != nil {
			return day(*t, v.tz)
		}
	}
	return ""
}

// Service names a service in the page's language, if the catalog knows
// it; plans name their own services.
func (v view) Service(name string) string {
	if _, ok := words["service."+name]; ok {
		return v.T("service." + name)
	}
	return name
}

// Method names a payment method.
func (v view) Method(m domain.PaymentMethod) string { return v.T("method." + string(m)) }

// Net is what was paid on p and not voided.
func (v view) Net(p domain.Package) domain.Money { return p.NetPaid() }

// Due is what is still to pay on p.
func (v view) Due(p domain.Package) domain.Money { return p.Due() }

// Percent writes a rate as a percentage: 0.10 as 10, 0.085 as 8.5.
func (v view) Percent(r domain.Rate) string {
	d, err := decimal.NewFromString(r.String())
	if err != nil {
		return r.String()
	}
	return d.Shift(2).String()
}

// Status names a package's status.
func (v view) Status(st domain.Status) string { return v.T("status." + string(st)) }

// Value is what was typed into field, or else def.
func (v view) Value(field, def string) string {
	if v.Form != nil {
		if _, ok := v.Form[field]; ok {
			return v.Form.Get(field)
		}
	}
	return def
}

// formField is one labelled input of a form, with what was typed and
// what was wrong with it.
type formField struct {
	ID, Name, Label, Type, Value, Auto, Err string
}

// Field is the input for the request field name (as the domain names it
// in its errors: "customer.phone"), labelled by the catalog's key label.
func (v view) Field(name, label, typ, auto string) formField {
	return formField{ID: "f-" + strings.ReplaceAll(name, ".", "-"), Name: name, Label: v.T(label), Type: typ,
		Value: v.Value(name, ""), Auto: auto, Err: v.Errors[name]}
}

// UnitValue is the value of one visit of service in plan pl: its first
// unit's (the allocation may give some a cent more).
func (v view) UnitValue(pl domain.Plan, service string) domain.Money {
	for _, u := range pl.Units {
		if u.Service == service {
			return u.Value
		}
	}
	return domain.Money{}
}

// With is the view with other data, for a part of a page.
func (v view) With(data any) view {
	v.Data = data
	return v
}

// view starts a page's view for user u (nil on the sign-in page).
func (s *Server) view(l lang, d *deskReq, title string) view {
	v := view{Lang: l, Title: text(l, title), tz: s.cfg.TZ}
	if d != nil {
		v.User, v.CSRF = &d.user, d.sess.csrf
		if d.r.Method == http.MethodGet {
			// The language link comes back here; after a post it goes home.
			v.Path = d.r.URL.RequestURI()
		}
		for _, n := range navOf(d.user.Role) {
			v.Nav = append(v.Nav, navItem{Href: n[0], Label: text(l, n[1]), Current: strings.HasPrefix(d.r.URL.Path, n[0])})
		}
	}
	return v
}

// navOf is a role's menu: href and label key.
func navOf(role domain.Role) [][2]string {
	switch role {
	case domain.RoleAdvisor:
		return [][2]string{{"/desk/find", "nav.find"}, {"/desk/sell", "nav.sell"}}
	case domain.RoleCashier:
		return [][2]string{{"/desk/queue", "nav.queue"}, {"/desk/find", "nav.find"}, {"/desk/close", "nav.close"}}
	case domain.RoleManager:
		return [][2]string{{"/desk/find", "nav.find"}, {"/desk/plans", "nav.plans"}, {"/desk/reports/liability", "nav.liability"}, {"/desk/close", "nav.close"}}
	case domain.RoleAuditor:
		return [][2]string{{"/desk/audit", "nav.audit"}, {"/desk/find", "nav.find"}, {"/desk/reports/liability", "nav.liability"}, {"/desk/close", "nav.close"}}
	}
	return [][2]string{{"/desk/find", "nav.find"}}
}

// render writes a page whole: a template that fails leaves no half page.
func (s *Server) render(w http.ResponseWriter, status int, page string, v view) {
	var b bytes.Buffer
	if err := s.desk.pages[page].Execute(&b, v); err != nil {
		s.log.Error("desk page failed", "page", page, "err", err)
		http.Error(w, text(v.Lang, "err.internal"), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// deskError shows a page that says what went wrong, in words.
func (s *Server) deskError(w http.ResponseWriter, l lang, d *deskReq, status int, key string) {
	v := s.view(l, d, "err.title")
	v.Data = text(l, key)
	s.render(w, status, "error", v)
}

// failed shows err on an error page, in the words its code has in the
// catalog, with the status the API would answer.
func (s *Server) failed(d *deskReq, err error) {
	status, words := s.deskWords(d.lang, err)
	v := s.view(d.lang, d, "err.title")
	v.Data = words
	s.render(d.w, status, "error", v)
}

// deskWords is the status of err (the API's mapping) and what a cashier
// reads of it.
func (s *Server) deskWords(l lang, err error) (int, string) {
	code := domain.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch {
	case code == domain.CodeInternal || !ok:
		s.log.Error("desk request failed", "code", code, "err", err)
		return status, text(l, "err.internal")
	case code == domain.CodePackageNotFound:
		return status, text(l, "err.nopackage")
	}
	if _, ok := words["err."+code]; ok {
		msg := text(l, "err."+code)
		if l == langEN && code == domain.CodeInvalidField {
			msg = domain.ErrorMessage(err) // names the field and the rule
		}
		return status, msg
	}
	return status, domain.ErrorMessage(err)
}

// fieldErrors puts err next to the field it names, or under "" for the
// form as a whole.
func (s *Server) fieldErrors(l lang, err error) (int, map[string]string) {
	status, msg := s.deskWords(l, err)
	field := ""
	var de *domain.Error
	if errors.As(err, &de) {
		field = de.Field
	}
	if field != "" && domain.ErrorCode(err) == domain.CodeInvalidField && l == langZH {
		msg = text(l, "err.invalid_field") + "（" + domain.ErrorMessage(err) + "）"
	}
	return status, map[string]string{field: msg}
}

// shownAt keeps the errors of fields a form shows next to the field, and
// moves the rest to the form as a whole (""), so that no error goes
// unsaid.
func shownAt(errs map[string]string, rendered ...string) map[string]string {
	for k, msg := range errs {
		if k != "" && !slices.Contains(rendered, k) {
			delete(errs, k)
			errs[""] = msg
		}
	}
	return errs
}

// refused puts err on a form posted again: each error next to its field
// among shown (the rest with the form), what was typed kept, and the
// form's idempotency key kept in key, since nothing was written under it
// and a corrected form is the same write. It returns the page's status.
func (s *Server) refused(d *deskReq, v *view, key *string, err error, shown ...string) int {
	v.Form = d.r.PostForm
	status, errs := s.fieldErrors(d.lang, err)
	v.Errors = shownAt(errs, shown...)
	if k := d.r.PostForm.Get("key"); k != "" {
		*key = k
	}
	return status
}

// formOp is the write a desk form asks for: the session's user, the
// form's idempotency key (a repeat of the same form appends nothing) and
// the digest of what it asks, as the API takes of a body.
func formOp(d *deskReq, req any) (op, error) {
	canon, err := json.Marshal(req)
	if err != nil {
		return op{}, fmt.Errorf("digest: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", d.r.Method, d.r.URL.Path)
	h.Write(canon)
	return op{user: d.user, key: d.r.PostForm.Get("key"), digest: hex.EncodeToString(h.Sum(nil))}, nil
}

// newFormKey is the idempotency key of a form about to be shown.
func newFormKey() string { return "desk-" + rand.Text() }
