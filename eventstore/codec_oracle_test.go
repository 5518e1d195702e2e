package eventstore_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// oracleDecode is Decode as it was before the envelope was read by hand:
// encoding/json's strict Decoder, a check for trailing data, then
// domain.DecodeEvent. It calls today's DecodeEvent, whose own oracle in
// domain holds it to the old one: together the two differential tests
// hold the whole path to what it was.
func oracleDecode(subject string, seq uint64, header nats.Header, body []byte) (domain.Envelope, error) {
	var env domain.Envelope
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&env); err != nil {
		return env, fmt.Errorf("seq %d on %s: decode envelope: %w", seq, subject, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return env, fmt.Errorf("seq %d on %s: trailing data after envelope", seq, subject)
	}
	env.Seq, env.Subject, env.Hash = seq, subject, eventstore.HashOf(body)
	env.Sig, env.KeyID, env.Mac = header.Get(eventstore.HeaderSig), header.Get(eventstore.HeaderKey), header.Get(eventstore.HeaderMac)
	if h := header.Get(eventstore.HeaderHash); h != "" && h != env.Hash {
		return env, fmt.Errorf("seq %d on %s: body hash %s does not match header %s", seq, subject, env.Hash, h)
	}
	ev, err := domain.DecodeEvent(env.Type, env.Schema, env.Data)
	if err != nil {
		return env, fmt.Errorf("seq %d on %s: %w", seq, subject, err)
	}
	env.Event = ev
	return env, nil
}

// storedMessage is one message as the bench's generated ledger stored it.
type storedMessage struct {
	Subject string      `json:"subject"`
	Seq     uint64      `json:"seq"`
	Header  nats.Header `json:"header"`
	Body    string      `json:"body"`
}

// storedMessages reads testdata/stored-messages.jsonl: the first messages
// of a ledger made by `packledger bench`'s data generator (plans, sales,
// payments and their receipts, activations, visits, a reversal, a
// refund), headers and bodies byte for byte as the stream held them.
func storedMessages(tb testing.TB) []storedMessage {
	tb.Helper()
	f, err := os.Open("testdata/stored-messages.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []storedMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m storedMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			tb.Fatalf("stored-messages.jsonl line %d: %v", len(out)+1, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// FuzzDecodeOracle holds Decode to oracleDecode on arbitrary bytes: both
// accept or both refuse, with the same message, and what both accept
// they read as the same envelope and event.
//
// mode picks the headers: bit 0 sends the body's own hash, bit 1 sends
// hdr as the hash instead, bit 2 sends hdr as signature, key and MAC.
func FuzzDecodeOracle(f *testing.F) {
	for _, m := range storedMessages(f) {
		f.Add(m.Subject, m.Seq, []byte(m.Body), m.Header.Get(eventstore.HeaderSig), uint8(5))
	}
	for _, s := range storedSamples(f) {
		body := s.body
		f.Add(s.subject, uint64(3), body, "", uint8(1))
		f.Add(s.subject, uint64(3), body, "0f", uint8(2))
		for _, edit := range [][2]string{
			{`"type"`, `"Type"`},
			{`"type"`, `"\u0074ype"`},
			{`"store"`, `"ſtore"`},
			{`"dealer":"demo"`, `"dealer":"demo","dealer":"evil"`},
			{`"actor":{`, `"actor":{"role":"auditor"},"actor":{`},
			{`"actor":{`, `"actor":null,"actor":{`},
			{`"schema":1`, `"schema":1.0`},
			{`"schema":1`, `"schema":"1"`},
			{`"schema":1`, `"schema":null,"schema":1`},
			{`"id":"`, `"id":null,"id":"`},
			{`"id":"`, `"id":"{`},
			{`"data":{`, `"data":null,"x":{`},
			{`"data":{`, `"data":{},"data":{`},
			{`"data":{`, "\"data\" :\n {"},
			{`"prev":""`, `"prev":"\ud83d\ude00\u00e9\ud800"`},
			{`"prev":""`, "\"prev\":\"\xff\""},
			{`"prev":""`, `"prev":"\x"`},
			{`Z"`, `+08:00"`},
			{`Z"`, `\u005a"`},
			{`"business_time":"`, `"business_time":null,"recorded_at":"`},
		} {
			f.Add(s.subject, uint64(3), bytes.Replace(body, []byte(edit[0]), []byte(edit[1]), 1), "", uint8(1))
		}
		// The type or schema again after the data: the data is read as
		// what the envelope names at its end.
		for _, tail := range []string{`,"type":"PlanRetired"}`, `,"type":"PackageSold"}`, `,"schema":2}`, `,"schema":1}`, `,"data":{}}`, `,"data":null}`} {
			f.Add(s.subject, uint64(3), append(bytes.Clone(body[:len(body)-1]), tail...), "", uint8(1))
		}
		f.Add(s.subject, uint64(3), append(bytes.Clone(body), " \t\r\n"...), "", uint8(1))
		f.Add(s.subject, uint64(3), append(bytes.Clone(body), " }"...), "", uint8(1))
		f.Add(s.subject, uint64(3), append([]byte(" \n"), body...), "", uint8(1))
		f.Add(s.subject, uint64(3), body[:len(body)-1], "", uint8(0))
	}
	for _, b := range []string{``, ` `, `null`, `null x`, `nullx`, `{}`, `{} {}`, `[]`, `"x"`, `1`, `true`, `{"data":null}`,
		`{"type":"PaymentRecorded","schema":1,"data":null}`, `{"type":"PaymentRecorded","schema":1}`, `{"note":  "<&> also not an event" }`,
		"not an event <&>\n\tat all"} {
		f.Add("ledger.demo.packages.x", uint64(9), []byte(b), "", uint8(0))
	}
	f.Fuzz(func(t *testing.T, subject string, seq uint64, body []byte, hdr string, mode uint8) {
		h := nats.Header{}
		if mode&1 != 0 {
			h.Set(eventstore.HeaderHash, eventstore.HashOf(body))
		}
		if mode&2 != 0 {
			h.Set(eventstore.HeaderHash, hdr)
		}
		if mode&4 != 0 {
			h.Set(eventstore.HeaderSig, hdr)
			h.Set(eventstore.HeaderKey, hdr)
			h.Set(eventstore.HeaderMac, hdr)
		}
		want, werr := oracleDecode(subject, seq, h, body)
		got, gerr := eventstore.Decode(subject, seq, h, body)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("Decode(%q):\n got error %v\nwant error %v", body, gerr, werr)
		}
		if werr != nil {
			if gerr.Error() != werr.Error() {
				t.Fatalf("Decode(%q):\n got error %v\nwant error %v", body, gerr, werr)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q):\n got %#v\nwant %#v", body, got, want)
		}
	})
}

// BenchmarkDecodeStored reads the stored messages back with Decode and
// with its oracle, in one run, so that the two compare on a shared
// machine: go test ./eventstore -run '^$' -bench DecodeStored -count 6.
func BenchmarkDecodeStored(b *testing.B) {
	msgs := storedMessages(b)
	for _, impl := range []struct {
		name   string
		decode func(string, uint64, nats.Header, []byte) (domain.Envelope, error)
	}{{"Decode", eventstore.Decode}, {"oracle", oracleDecode}} {
		b.Run(impl.name, func(b *testing.B) {
			bodies := make([][]byte, len(msgs))
			for i, m := range msgs {
				bodies[i] = []byte(m.Body)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m := msgs[i%len(msgs)]
				if _, err := impl.decode(m.Subject, m.Seq, m.Header, bodies[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecode_Errors pins what a refused message is told, word for word
// as before (the oracle must agree), and that bodies the one-pass read
// cannot vouch for are read as the two passes read them.
func TestDecode_Errors(t *testing.T) {
	s := storedSamples(t)[3] // a PaymentRecorded
	body := func(old, new string) []byte {
		t.Helper()
		b := bytes.Replace(s.body, []byte(old), []byte(new), 1)
		if bytes.Equal(b, s.body) {
			t.Fatalf("%s is not in %s", old, s.body)
		}
		return b
	}
	end := func(tail string) []byte { return append(bytes.Clone(s.body[:len(s.body)-1]), tail...) }
	at := "seq 7 on " + s.subject + ": "
	for _, c := range []struct {
		name   string
		body   []byte
		header string
		want   string // "" for accepted
	}{
		{"AsWritten", s.body, "", ""},
		{"NotJSON", []byte("not an event <&>\n\tat all"), "", at + "decode envelope: invalid character 'o' in literal null (expecting 'u')"},
		{"UnknownField", []byte(`{"note":  "<&> also not an event" }`), "", at + `decode envelope: json: unknown field "note"`},
		{"BadDataSyntax", body(`"data":{`, `"data":{,`), "", at + "decode envelope: invalid character ',' looking for beginning of object key string"},
		{"BadEnvelopeType", body(`"schema":1`, `"schema":"1"`), "", at + "decode envelope: json: cannot unmarshal string into Go struct field Envelope.schema of type int"},
		{"BadActor", body(`"role":"manager"`, `"role":1`), "", at + "decode envelope: json: cannot unmarshal number into Go struct field Actor.actor.role of type domain.Role"},
		{"Trailing", end(`} {}`), "", at + "trailing data after envelope"},
		{"HashBeforeEvent", body(`"amount":"2448.00"`, `"amount":"2448.001"`), "0f", at + "body hash " + eventstore.HashOf(body(`"amount":"2448.00"`, `"amount":"2448.001"`)) + " does not match header 0f"},
		{"BadEvent", body(`"amount":"2448.00"`, `"amount":"2448.001"`), "", at + `decode PaymentRecorded: json: cannot unmarshal "2448.001" into Go struct field PaymentRecorded.amount of type domain.Money`},
		{"UnknownEventField", body(`"receipt":"R-0001"`, `"receipt":"R-0001","x":1`), "", at + `decode PaymentRecorded: json: unknown field "x"`},
		{"SchemaAfterData", end(`,"schema":2}`), "", at + "event PaymentRecorded: unknown schema version 2"},
		{"TypeAfterData", end(`,"type":"PlanRetired"}`), "", at + `decode PlanRetired: json: unknown field "payment_id"`},
		{"TypeAgainAfterData", end(`,"type":"PaymentRecorded"}`), "", ""},
		{"DataAgain", end(`,"data":{"amount":"1.00"}}`), "", ""},
		{"UnknownType", body(`"type":"PaymentRecorded"`, `"type":"Nope"`), "", at + `unknown event type "Nope"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := nats.Header{}
			if c.header != "" {
				h.Set(eventstore.HeaderHash, c.header)
			}
			env, err := eventstore.Decode(s.subject, 7, h, c.body)
			want, oracle := oracleDecode(s.subject, 7, h, c.body)
			switch {
			case c.want == "" && (err != nil || oracle != nil):
				t.Fatalf("refused: %v (oracle: %v)", err, oracle)
			case c.want == "" && !reflect.DeepEqual(env, want):
				t.Fatalf("read as\n%#v\nthe oracle reads\n%#v", env, want)
			case c.want != "" && (err == nil || err.Error() != c.want || oracle == nil || oracle.Error() != c.want):
				t.Fatalf("\n   got %v\noracle %v\n  want %s", err, oracle, c.want)
			}
		})
	}
}
