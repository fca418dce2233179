package rules

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/parser/utils"

	"github.com/hookrelay/hookrelay/store"
)

// field is one field of the event a condition reads, found in its syntax
// tree when it is compiled: a chain of members with constant names and
// indexes off body, headers or query (body.data.status,
// headers["x-kind"], body.items[0].sku). A member whose name is computed,
// or one inside a predicate (.sku in any(body.items, .sku == "x")), is not
// one: its value depends on more than the event.
type field struct {
	src    string // as written
	root   string // body, headers or query
	path   []any  // string names and int indexes
	wanted []string
}

// maxValue bounds the length of a field's value in a trace: the trace
// explains, the payload is stored beside it.
const maxValue = 200

// fields lists the fields src reads, each once, in the order they first
// appear, with what it compares each with. A source that does not parse
// reads none: the compiler has already refused it.
func fields(src string) []field {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	v := &fieldVisitor{inner: map[ast.Node]bool{}, at: map[ast.Node]int{}}
	ast.Walk(&tree.Node, v)
	var out []field
	for _, f := range v.found {
		if !v.inner[f.node] {
			out = append(out, f.field)
		}
	}
	// The same field read twice (status == "A" || status == "B") is one
	// entry with every comparison.
	merged := out[:0]
	bySrc := map[string]int{}
	for _, f := range out {
		if i, ok := bySrc[f.src]; ok {
			for _, w := range f.wanted {
				if !slices.Contains(merged[i].wanted, w) {
					merged[i].wanted = append(merged[i].wanted, w)
				}
			}
			continue
		}
		bySrc[f.src] = len(merged)
		merged = append(merged, f)
	}
	return merged
}

type foundField struct {
	node ast.Node
	field
}

// fieldVisitor sees the tree from the leaves up (ast.Walk), so a chain is
// found before the longer chain that holds it, which marks it inner.
type fieldVisitor struct {
	found []foundField
	inner map[ast.Node]bool
	at    map[ast.Node]int // a found chain's place in found
	// compared holds, for each comparison with a constant, the field and
	// the place in its wanted of what it recorded.
	compared map[*ast.BinaryNode][2]int
}

func (v *fieldVisitor) Visit(node *ast.Node) {
	n := *node
	switch x := n.(type) {
	case *ast.IdentifierNode, *ast.MemberNode:
		if f, ok := chain(n); ok {
			if m, isMember := x.(*ast.MemberNode); isMember {
				v.inner[unchain(m.Node)] = true
			}
			v.at[n] = len(v.found)
			v.found = append(v.found, foundField{node: n, field: f})
		}
	case *ast.ChainNode:
		if i, ok := v.at[x.Node]; ok {
			v.at[n] = i
		}
	case *ast.BinaryNode:
		v.compare(x)
	case *ast.UnaryNode:
		// "x not in [...]" is not(x in [...]); not(x == 1) wants x != 1.
		if b, ok := x.Node.(*ast.BinaryNode); ok && (x.Operator == "not" || x.Operator == "!") {
			v.negate(b)
		}
	}
}

// compare records what a field is compared with.
func (v *fieldVisitor) compare(b *ast.BinaryNode) {
	flip := map[string]string{"<": ">", ">": "<", "<=": ">=", ">=": "<="}
	switch b.Operator {
	case "==", "!=", "<", ">", "<=", ">=":
		if i, ok := v.at[b.Left]; ok && constant(b.Right) {
			v.want(b, i, b.Operator+" "+b.Right.String())
		} else if i, ok := v.at[b.Right]; ok && constant(b.Left) {
			op := b.Operator
			if f, ok := flip[op]; ok {
				op = f
			}
			v.want(b, i, op+" "+b.Left.String())
		}
	case "matches", "startsWith", "endsWith", "contains":
		if i, ok := v.at[b.Left]; ok && constant(b.Right) {
			v.want(b, i, b.Operator+" "+b.Right.String())
		}
	case "in":
		if i, ok := v.at[b.Left]; ok && constant(b.Right) {
			v.want(b, i, "in "+b.Right.String())
		} else if i, ok := v.at[b.Right]; ok && constant(b.Left) {
			v.want(b, i, "contains "+b.Left.String())
		}
	}
}

// negate turns the comparison compare recorded for b, if any, into its
// opposite.
func (v *fieldVisitor) negate(b *ast.BinaryNode) {
	if at, ok := v.compared[b]; ok {
		w := &v.found[at[0]].wanted[at[1]]
		*w = "not " + *w
	}
}

// want records that the comparison b wants w of found field i.
func (v *fieldVisitor) want(b *ast.BinaryNode, i int, w string) {
	if v.compared == nil {
		v.compared = map[*ast.BinaryNode][2]int{}
	}
	v.compared[b] = [2]int{i, len(v.found[i].wanted)}
	v.found[i].wanted = append(v.found[i].wanted, w)
}

// unchain is n without the ChainNode that ?. (or nilSafe) wraps it in.
func unchain(n ast.Node) ast.Node {
	if c, ok := n.(*ast.ChainNode); ok {
		return c.Node
	}
	return n
}

// chain reads n as a field: a chain of constant members off body, headers
// or query.
func chain(n ast.Node) (field, bool) {
	var path []any
	for {
		switch x := unchain(n).(type) {
		case *ast.IdentifierNode:
			switch x.Value {
			case "body", "headers", "query":
			default:
				return field{}, false
			}
			slices.Reverse(path)
			return field{src: fieldName(x.Value, path), root: x.Value, path: path}, true
		case *ast.MemberNode:
			if x.Method {
				return field{}, false
			}
			switch p := x.Property.(type) {
			case *ast.StringNode:
				path = append(path, p.Value)
			case *ast.IntegerNode:
				path = append(path, p.Value)
			case *ast.UnaryNode:
				i, ok := p.Node.(*ast.IntegerNode)
				if !ok || p.Operator != "-" {
					return field{}, false
				}
				path = append(path, -i.Value)
			default:
				return field{}, false
			}
			n = x.Node
		default:
			return field{}, false
		}
	}
}

// fieldName writes a field as plain member access, whether or not the
// condition wrote it with ?. (every access into the payload is nil-safe
// anyway): body.data.status, headers["x-kind"], body.items[0].
func fieldName(root string, path []any) string {
	b := []byte(root)
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if utils.IsValidIdentifier(p) {
				b = append(append(b, '.'), p...)
			} else {
				b = append(strconv.AppendQuote(append(b, '['), p), ']')
			}
		case int:
			b = append(strconv.AppendInt(append(b, '['), int64(p), 10), ']')
		}
	}
	return string(b)
}

// constant reports whether n is a literal: what a field is compared with
// when the trace can say "wanted".
func constant(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return true
	case *ast.UnaryNode:
		return x.Operator == "-" && constant(x.Node)
	case *ast.ArrayNode:
		for _, e := range x.Nodes {
			if !constant(e) {
				return false
			}
		}
		return true
	}
	return false
}

// errNoBudget: the event's evaluation allowance was spent before a
// field could be read.
var errNoBudget = errors.New("not read: the evaluation budget was spent")

// read is the value of f in env, as a FieldTrace. Reading a field is
// charged to env's budget like a step of a loop, so a spent budget stops
// the trace too.
func (f *field) read(env Env) store.FieldTrace {
	ft := store.FieldTrace{Field: f.src, Wanted: f.wanted}
	if env.budget != nil {
		if err := env.budget.tick(); err != nil {
			env.budget.endRun()
			ft.Error = errNoBudget.Error()
			return ft
		}
		env.budget.endRun()
	}
	var v any
	switch f.root {
	case "body":
		v = env.Body
	case "headers":
		v = env.Headers
	case "query":
		v = env.Query
	}
	for _, p := range f.path {
		var ok bool
		if v, ok = member(v, p); !ok {
			ft.Absent = true
			return ft
		}
	}
	ft.Value = string(appendValue(make([]byte, 0, 32), v, maxValue))
	return ft
}

// member is v[p] as expr reads it: a name of a map, an index of an array
// (negative from its end).
func member(v any, p any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := p.(string); ok {
			e, ok := x[s]
			return e, ok
		}
	case map[string]string:
		if s, ok := p.(string); ok {
			e, ok := x[s]
			return e, ok
		}
	case []any:
		if i, ok := p.(int); ok {
			if i < 0 {
				i += len(x)
			}
			if i >= 0 && i < len(x) {
				return x[i], true
			}
		}
	}
	return nil, false
}

// appendValue appends v as JSON, cut with "…" once it passes limit bytes.
func appendValue(b []byte, v any, limit int) []byte {
	start := len(b)
	b = appendJSON(b, v, start+limit)
	if len(b)-start > limit {
		n := start + limit
		for n > start && !utf8.RuneStart(b[n]) {
			n--
		}
		b = append(b[:n], "…"...)
	}
	return b
}

// appendObject appends m as appendJSON does, its keys sorted.
func appendObject[V any](b []byte, m map[string]V, stop int) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ": "...)
		if b = appendJSON(b, m[k], stop); len(b) > stop {
			return b
		}
	}
	return append(b, '}')
}

// appendJSON appends v as JSON, stopping early once b is longer than stop.
func appendJSON(b []byte, v any, stop int) []byte {
	if len(b) > stop {
		return b
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		return strconv.AppendQuote(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			if b = appendJSON(b, e, stop); len(b) > stop {
				return b
			}
		}
		return append(b, ']')
	case map[string]any:
		return appendObject(b, x, stop)
	case map[string]string:
		return appendObject(b, x, stop)
	}
	j, err := marshalJSON(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}
