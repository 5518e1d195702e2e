package handlers

import (
	"net/http"
	"strings"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// The cashier's pages: the queue of packages awaiting payment, a payment
// (in as many parts as the customer pays), its receipt, the service
// presale contract both sides sign, and the day's close.

// maxQueue bounds the queue shown; the page says how many there are.
const maxQueue = 200

// queueData is the cashier's queue.
type queueData struct {
	Packages []domain.Package
	Total    int
	All      bool // every store's, not the cashier's own
	Store    string
}

func (s *Server) queuePage(d *deskReq) {
	if err := s.ready(d.r.Context()); err != nil {
		s.failed(d, err)
		return
	}
	data := queueData{All: d.r.URL.Query().Get("all") == "1", Store: d.user.Store}
	store := d.user.Store
	if data.All {
		store = ""
	}
	s.reads.Read(func(m *projections.Model) { data.Packages, data.Total = m.Awaiting(store, maxQueue) })
	v := s.view(d.lang, d, "queue.title")
	v.Data = data
	s.render(d.w, http.StatusOK, "queue", v)
}

// payData is what the payment form shows.
type payData struct {
	P       domain.Package
	Due     domain.Money
	Methods []domain.PaymentMethod
	Key     string
}

func (s *Server) payPage(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	s.showPay(d, p, http.StatusOK, nil)
}

// showPay shows the payment form for p, with what was typed and err next
// to its field, if any.
func (s *Server) showPay(d *deskReq, p domain.Package, status int, err error) {
	v := s.view(d.lang, d, "pay.title")
	data := payData{P: p, Due: p.Due(), Methods: domain.PaymentMethods, Key: newFormKey()}
	if err != nil {
		status = s.refused(d, &v, &data.Key, err, "amount", "method", "receipt")
	}
	v.Data = data
	s.render(d.w, status, "pay", v)
}

func (s *Server) pay(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	f := d.r.PostForm
	amount, err := domain.ParseMoney(strings.TrimSpace(f.Get("amount")))
	if err != nil {
		err = domain.FieldErrorf(domain.CodeInvalidAmount, "amount", "%s", domain.ErrorMessage(err))
	}
	req := paymentRequest{Amount: amount, Method: domain.PaymentMethod(f.Get("method")), Receipt: strings.TrimSpace(f.Get("receipt"))}
	var o op
	if err == nil {
		o, err = formOp(d, req)
	}
	var pay domain.Payment
	if err == nil {
		pay, _, _, err = s.recordPaymentFor(d.r.Context(), o, p.ID, req)
	}
	if err != nil {
		s.showPay(d, p, 0, err)
		return
	}
	http.Redirect(d.w, d.r, "/desk/packages/"+p.ID.String()+"/receipts/"+pay.ID.String()+"?done=paid", http.StatusSeeOther)
}

// receiptData is a payment's receipt, with the package's figures as they
// were once it was paid: a receipt printed again later says the same.
type receiptData struct {
	P        domain.Package
	Pay      domain.Payment
	PaidThen domain.Money
	DueThen  domain.Money
	Dealer   string
}

func (s *Server) receiptPage(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	pid, err := parseID(d.r.PathValue("pid"), domain.CodePaymentNotFound, "payment")
	var pay domain.Payment
	if err == nil {
		if pay, ok = p.PaymentByID(pid); !ok {
			err = domain.Errorf(domain.CodePaymentNotFound, "no payment %s", pid)
		}
	}
	if err != nil {
		s.failed(d, err)
		return
	}
	v := s.view(d.lang, d, "receipt.title")
	if k, ok := flashes[d.r.URL.Query().Get("done")]; ok {
		v.Flash = text(d.lang, k)
	}
	// The package as it was once this payment was recorded: a void before
	// it counts, one after it does not.
	entries, err := s.historyOf(d.r.Context(), p.ID)
	if err != nil {
		s.failed(d, err)
		return
	}
	var then historyAfter
	for _, e := range entries {
		if r, ok := e.Event.(domain.PaymentRecorded); ok && r.PaymentID == pay.ID {
			then = e.After
			break
		}
	}
	v.Data = receiptData{P: p, Pay: pay, PaidThen: then.NetPaid(), DueThen: p.Price.Sub(then.NetPaid()), Dealer: s.cfg.Dealer}
	s.render(d.w, http.StatusOK, "receipt", v)
}

// contractData is the service presale contract of a package.
type contractData struct {
	P      domain.Package
	Dealer string
	Lines  []serviceLine
}

func (s *Server) contractPage(d *deskReq) {
	p, ok := s.pathPackage(d)
	if !ok {
		return
	}
	v := s.view(d.lang, d, "contract.title")
	v.Data = contractData{P: p, Dealer: s.cfg.Dealer, Lines: serviceLines(p)}
	s.render(d.w, http.StatusOK, "contract", v)
}

// closeData is a day's close as the desk shows it.
type closeData struct {
	projections.CloseReport
	Key string // the ledger's key, printed so that the paper names it
}

func (s *Server) closePage(d *deskReq) {
	date, store, err := parseCloseQuery(d.r.URL.Query(), d.user, s.now())
	if err == nil {
		err = s.ready(d.r.Context())
	}
	if err != nil {
		s.failed(d, err)
		return
	}
	var rep projections.CloseReport
	s.reads.Read(func(m *projections.Model) { rep = m.DailyClose().Report(date, store) })
	v := s.view(d.lang, d, "close.title")
	v.Form = d.r.URL.Query()
	v.Data = closeData{CloseReport: rep, Key: s.cfg.KeyFingerprint}
	s.render(d.w, http.StatusOK, "close", v)
}
