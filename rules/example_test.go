package rules_test

import (
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// A hook's rule file such as
//
//	rules:
//	  - name: active-contact-updated
//	    when: body.event == "CONTACT_UPDATED" && body.data.status == "ACTIVE"
//	    actions: [contact-update, audit]
//	  - name: any-contact-event
//	    when: body.event startsWith "CONTACT_"
//	    actions: [audit]
//	  - name: contact-deleted
//	    when: body.event == "CONTACT_DELETED"
//	    actions: [contact-delete]
//
// is compiled once at load into a Set, then matched against each event.
func Example() {
	compile := func(name, when string, actions ...string) rules.Rule {
		p, err := rules.CompileCondition(when)
		if err != nil {
			panic(err)
		}
		return rules.Rule{Name: name, When: p, Actions: actions}
	}
	set := &rules.Set{Rules: []rules.Rule{
		compile("active-contact-updated", `body.event == "CONTACT_UPDATED" && body.data.status == "ACTIVE"`, "contact-update", "audit"),
		compile("any-contact-event", `body.event startsWith "CONTACT_"`, "audit"),
		compile("contact-deleted", `body.event == "CONTACT_DELETED"`, "contact-delete"),
	}}

	for _, payload := range []string{
		`{"event":"CONTACT_UPDATED","data":{"id":"c_1","status":"ACTIVE"}}`,
		`{"event":"CONTACT_DELETED","data":{"id":"c_1"}}`,
		`{"ping":true}`,
	} {
		body, err := rules.DecodeBody([]byte(payload), "application/json", 64)
		if err != nil {
			panic(err)
		}
		ev := store.Event{ID: "evt_1", Hook: "oncloudwine", ReceivedAt: time.Now()}
		matches, errs := set.Match(rules.NewEnv(ev, body))
		fmt.Println(payload)
		for _, m := range matches {
			fmt.Printf("  rule %s -> action %s\n", m.Rule, m.Action)
		}
		if len(matches) == 0 {
			fmt.Println("  no match: stored as ignored")
		}
		for _, err := range errs {
			fmt.Println("  error:", err)
		}
	}
	// Output:
	// {"event":"CONTACT_UPDATED","data":{"id":"c_1","status":"ACTIVE"}}
	//   rule active-contact-updated -> action contact-update
	//   rule active-contact-updated -> action audit
	// {"event":"CONTACT_DELETED","data":{"id":"c_1"}}
	//   rule any-contact-event -> action audit
	//   rule contact-deleted -> action contact-delete
	// {"ping":true}
	//   no match: stored as ignored
}

// A template leaf that is one expression keeps its type; anything else
// becomes a string.
func ExampleCompileTemplate() {
	body, _ := rules.DecodeBody([]byte(`{"order":{"id":1234567890123456789,"total":99.5}}`), "application/json", 0)
	env := rules.NewEnv(store.Event{Hook: "shop"}, body)
	for _, src := range []string{"{{ body.order.total }}", "order {{ body.order.id }} from {{ hook }}"} {
		tpl, err := rules.CompileTemplate(src, nil)
		if err != nil {
			panic(err)
		}
		v, err := tpl.Render(env)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%T %v\n", v, v)
	}
	// Output:
	// float64 99.5
	// string order 1234567890123456789 from shop
}
