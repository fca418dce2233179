package rules

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestBodyShape(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`body.type == "x"`, "body.type"},
		{`body.data.object.status == "paid" && body.type == "a"`, "body.data.object.status, body.type"},
		{`body["x-y"] == 1`, `body["x-y"]`},
		{`body?.data?.id == 1`, "body.data.id"},
		{`body.items[0].id == 1`, "body.items"},
		{`body.items[-1] == 1`, "body.items"},
		{`any(body.items, {.id == 1})`, "body.items"},
		{`"paid" in body.tags`, "body.tags"},
		{`body.a == 1 && body.a.b == 2`, "body.a"},
		{`body.data.id == body.data.other`, "body.data.id, body.data.other"},
		{`len(body) > 0`, "body"},
		{`body != nil`, "body"},
		{`let b = body; b.x == 1`, "body"},
		{`body[headers["k"]] == 1`, "body"},
		{`toJSON(body.data) != ""`, "body.data"},
		{`$env.body.x == 1`, "body"},
		{`$env["headers"]["x"] == "a"`, "body"},
		{`headers["x-kind"] == "a" && query.v == "1"`, ""},
		{`event.id != "" && hook == "h"`, ""},
		{`body.a.b.c == 1 || body.a.d == 2 || body.e == 3`, "body.a.b.c, body.a.d, body.e"},
	} {
		p, err := CompileCondition(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if got := p.BodyShape().String(); got != c.want {
			t.Errorf("%s reads %q, want %q", c.src, got, c.want)
		}
	}
	key, err := CompileValue(`body.order.id + "-" + body.type`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := key.BodyShape().String(), "body.order.id, body.type"; got != want {
		t.Errorf("value reads %q, want %q", got, want)
	}
	var none *Program
	if none.BodyShape() != nil {
		t.Error("a nil program reads something")
	}
}

func TestSetAndUnionShapes(t *testing.T) {
	rule := func(src string) Rule {
		p, err := CompileCondition(src)
		if err != nil {
			t.Fatal(err)
		}
		return Rule{Name: src, When: p}
	}
	s := &Set{Rules: []Rule{rule(`body.type == "a"`), rule(`body.data.id == 1`), rule(`headers["x"] == "y"`)}}
	if got, want := s.BodyShape().String(), "body.data.id, body.type"; got != want {
		t.Errorf("set reads %q, want %q", got, want)
	}
	var none *Set
	if none.BodyShape() != nil {
		t.Error("a nil set reads something")
	}
	if got := Union(nil, s.BodyShape(), WholeBody()).String(); got != "body" {
		t.Errorf("union with the whole body reads %q", got)
	}
	if got := Union(nil, nil); got != nil {
		t.Errorf("union of nothing reads %q", got)
	}
}

// project is what of v the shape s keeps, as DecodeBodyShaped builds it.
func project(v any, s *Shape) any {
	if s == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if s.whole || !ok {
		return v
	}
	out := map[string]any{}
	for k, sub := range s.keys {
		if x, ok := m[k]; ok {
			out[k] = project(x, sub)
		}
	}
	return out
}

// shapes are the shapes the decoding tests try: nothing, the whole,
// members at several depths, and a member that is a list.
func shapes(t testing.TB) []*Shape {
	var out []*Shape
	for _, src := range []string{
		`hook == ""`, `body != nil`, `body.a == 1`, `body.a.b == 1 && body.c == 2`,
		`body.a.a.a == 1 && body.b == 2 && body["\u00e9"] == 3`, `body.x == 1 && body.a.b.c == 2`,
	} {
		p, err := CompileCondition(src)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.BodyShape())
	}
	return out
}

// checkShaped holds DecodeBodyShaped to DecodeBodyWithin: the same
// payloads refused with the same error, and what it builds what shape
// keeps of the whole.
func checkShaped(t *testing.T, raw []byte, maxDepth, maxValues int, s *Shape) {
	t.Helper()
	whole, werr := DecodeBodyWithin(raw, "application/json", maxDepth, maxValues)
	got, err := DecodeBodyShaped(raw, "application/json", maxDepth, maxValues, s)
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("%q shaped to %q: error %v, whole: %v", raw, s, err, werr)
	}
	if err != nil {
		return
	}
	if want := project(whole, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q shaped to %q: %#v, want %#v", raw, s, got, want)
	}
}

func TestDecodeBodyShaped(t *testing.T) {
	many := `{`
	for i := range 40 {
		many += fmt.Sprintf(`"k%d":%d,`, i, i)
	}
	for _, raw := range []string{
		`{"a":{"b":1,"c":[1,{"d":2}]},"c":"x","b":null}`,
		`{"a":{"a":{"a":true}},"b":[1,2],"é":3}`,
		`{"\u00e9":1,"é":2}`,                    // a key twice, once escaped
		`{"a":{"b":1,"b":2}}`,                   // a key twice where nothing is read
		`{"x":{"y":1},"a":{"b":{"c":1}},"x":2}`, // twice at the top
		`{"a":[{"b":1,"b":1}]}`,                 // twice inside a list
		many + `"k3":1}`,                        // twice in an object of many keys
		many + `"k40":{"a":1}}`,                 // many keys, none twice
		`{"a":1e400}`, `{"b":1e400}`, `{"b":` + strings.Repeat("9", 400) + `}`, `{"b":-` + strings.Repeat("9", 400) + `}`, `{"b":-12345678901234567890}`, `{"b":123456789012345678}`,
		`{"b":"\x01"}`, `{"b":"\q"}`, "{\"b\":\"\xff\"}", "{\"a\":\"\xff\"}", `{"b":"\ud800"}`,
		`{"a":1,"b":[1,2,}`, `{"a":1,"b":{"c":}`, `{"b":tru}`, `{"b":01}`, `{"b" 1}`, `{"a":1} x`,
		`[1,{"a":2}]`, `"s"`, `12`, `null`, `{}`, `{"a":{}}`, `{"a":[]}`, `{"b":[]}`, `{"b":{}}`,
		`{"b":[[[[[[1]]]]]]}`, `{"a":[[[[[[1]]]]]]}`, `{"b":{"c":{"d":{"e":{"f":{}}}}}}`,
	} {
		for _, s := range shapes(t) {
			for _, limits := range [][2]int{{0, 0}, {3, 0}, {0, 6}} {
				checkShaped(t, []byte(raw), limits[0], limits[1], s)
			}
		}
	}
}

// FuzzDecodeBodyShaped holds DecodeBodyShaped to DecodeBodyWithin for any
// input, shape and limits (checkShaped). Its seeds are FuzzDecodeBody's.
func FuzzDecodeBodyShaped(f *testing.F) {
	for _, seed := range []string{
		`{"a":{"b":1,"c":[1,{"d":2}]},"c":"x"}`, `{"\u00e9":1,"é":2}`, `{"a":{"b":1,"b":2}}`, `{"b":1e400}`,
		`{"a":{"a":{"a":true}},"b":[1,2]}`, "{\"b\":\"\xff\"}", `{"x":{"y":1},"x":2}`,
	} {
		f.Add([]byte(seed), uint8(0), uint8(0))
	}
	ss := shapes(f)
	f.Fuzz(func(t *testing.T, raw []byte, pick, limit uint8) {
		checkShaped(t, raw, int(limit%8), int(limit/8), ss[int(pick)%len(ss)])
	})
}

// TestShapedBodyReadsTheSame runs conditions on the payload decoded to
// their own shape and decoded whole: each must give the same answer.
func TestShapedBodyReadsTheSame(t *testing.T) {
	payloads := []string{
		`{"type":"a","data":{"id":1,"other":1,"tags":["x","paid"],"items":[{"id":1},{"id":2}]},"x-y":"z"}`,
		`{"type":"b","data":{"id":2,"other":1,"status":"paid"},"items":[{"id":3}],"tags":"paid"}`,
		`{"type":1,"data":"flat","items":{"id":1}}`,
		`[1,2,3]`, `"text"`, `null`, `{}`,
	}
	for _, src := range []string{
		`body.type == "a"`, `body.data.id == body.data.other`, `"paid" in body.data.tags`,
		`any(body.data.items, {.id == 2})`, `body.items[0].id == 3`, `len(body) > 2`, `body["x-y"] == "z"`,
		`body.data?.status == "paid"`, `body.data.items[1].id == 2`, `body == nil`, `body.data == "flat"`,
		`len(body.data) == 5`, `toJSON(body.data) contains "paid"`, `type(body.data) == "map"`,
	} {
		p, err := CompileCondition(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for _, raw := range payloads {
			whole, err := DecodeBody([]byte(raw), "application/json", 0)
			if err != nil {
				t.Fatal(err)
			}
			shaped, err := DecodeBodyShaped([]byte(raw), "application/json", 0, 0, p.BodyShape())
			if err != nil {
				t.Fatal(err)
			}
			want, werr := p.Run(Env{Body: whole})
			got, err := p.Run(Env{Body: shaped})
			if fmt.Sprint(got, err) != fmt.Sprint(want, werr) {
				t.Errorf("%s on %s: %v %v shaped to %q, %v %v whole", src, raw, got, err, p.BodyShape(), want, werr)
			}
		}
	}
}

// BenchmarkDecodeBodyShaped decodes a payment provider's 1 KiB webhook and
// a 24 KiB one (an order of 100 lines) whole, to one field, and to
// nothing (checked only), e.g.
//
//	go test -run '^$' -bench DecodeBodyShaped -benchmem ./rules/
func BenchmarkDecodeBodyShaped(b *testing.B) {
	payment := `{"id":"evt_1","route":"fast","type":"payment_intent.succeeded","data":{"object":{"id":"pi_32nptkhkaepcn",` +
		`"object":"payment_intent","amount":38082,"amount_received":38082,"capture_method":"automatic",` +
		`"client_secret":"pi_32nptkhkaepcn_secret_894jmc","created":1795985057,"currency":"eur","customer":"cus_894jmc",` +
		`"description":"invoice weekend order 569077","latest_charge":"ch_32nptkhkaepcn","livemode":false,` +
		`"metadata":{"order_id":"ORD-569077","club":"vintage"},"payment_method":"pm_32nptkhkaepcn",` +
		`"receipt_email":"member894jmc@example.com","shipping":{"address":{"city":"Berlin","country":"DE",` +
		`"line1":"Torstrasse 21","postal_code":"41971"},"name":"Member 894jmc"},"status":"succeeded"}},` +
		`"note":"club gold merlot pinot shipped vintage renewal note wine resumed silver requested subscription"}`
	var order strings.Builder
	order.WriteString(`{"id":"ord_1","route":"fast","lines":[`)
	for i := range 100 {
		if i > 0 {
			order.WriteByte(',')
		}
		fmt.Fprintf(&order, `{"sku":"WINE-%04d","name":"Riesling Spätlese %d","quantity":%d,"price":{"amount":%d,"currency":"EUR"},"tags":["white","dry"]}`, i, 2000+i, 1+i%6, 1290+i)
	}
	order.WriteString(`]}`)
	route, err := CompileCondition(`body.route == "fast"`)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct{ name, body string }{{"1KiB", payment}, {"24KiB", order.String()}} {
		for _, s := range []struct {
			name  string
			shape *Shape
		}{{"whole", WholeBody()}, {"one-field", route.BodyShape()}, {"checked-only", nil}} {
			b.Run(p.name+"/"+s.name, func(b *testing.B) {
				raw := []byte(p.body)
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := DecodeBodyShaped(raw, "application/json", 0, 0, s.shape); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
