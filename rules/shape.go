package rules

import (
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Shape is the part of a payload that some expressions can read: the whole
// of it, or members of its top-level object, each read whole or by some
// of its own members. The gateway decodes an inbound payload to the shape
// its hook's expressions read (DecodeBodyShaped): a rule on body.type
// needs one string of a 30 KiB push event, not a tree of its thousand
// values. A nil *Shape reads nothing.
//
// A Shape is found from the expressions' compiled syntax (Program.BodyShape):
// each member access by a constant name off body (body.data.status,
// body["x-y"]) reads what it names; anything else that reaches body — an
// index into a list, a computed key, body itself passed to a function or
// bound with let, $env — reads the value it reaches whole. Shapes are
// immutable and safe to share.
type Shape struct {
	whole bool
	keys  map[string]*Shape // when not whole: the members read, each with its shape
}

var wholeShape = &Shape{whole: true}

// WholeBody is the shape of a payload read whole.
func WholeBody() *Shape { return wholeShape }

// Union is the shape that reads what any of shapes reads.
func Union(shapes ...*Shape) *Shape {
	var u *Shape
	for _, s := range shapes {
		u = u.union(s)
	}
	return u
}

func (s *Shape) union(o *Shape) *Shape {
	switch {
	case s == nil:
		return o
	case o == nil:
		return s
	case s.whole || o.whole:
		return wholeShape
	}
	u := &Shape{keys: make(map[string]*Shape, len(s.keys)+len(o.keys))}
	for k, v := range s.keys {
		u.keys[k] = v
	}
	for k, v := range o.keys {
		u.keys[k] = u.keys[k].union(v)
	}
	return u
}

// pathShape reads the value at path whole.
func pathShape(path []string) *Shape {
	s := wholeShape
	for i := len(path) - 1; i >= 0; i-- {
		s = &Shape{keys: map[string]*Shape{path[i]: s}}
	}
	return s
}

// String lists what s reads, as expressions name it: "body" for the whole,
// "body.data.id, body.type" for members, "" for nothing.
func (s *Shape) String() string {
	var paths []string
	var walk func(s *Shape, prefix string)
	walk = func(s *Shape, prefix string) {
		if s.whole {
			paths = append(paths, prefix)
			return
		}
		for k, v := range s.keys {
			walk(v, fieldName(prefix, []any{k}))
		}
	}
	if s != nil {
		walk(s, "body")
	}
	slices.Sort(paths)
	return strings.Join(paths, ", ")
}

// bodyShape is what the compiled expression n reads of body. The nodes
// are visited outermost first, so that the longest chain of constant
// members off body is the one taken, and the chains inside it are not
// taken again as reads of their own.
func bodyShape(n ast.Node) *Shape {
	var nodes []ast.Node
	ast.Walk(&n, collect{&nodes}) // innermost first
	inner := map[ast.Node]bool{}
	var s *Shape
	for _, n := range slices.Backward(nodes) {
		if inner[n] {
			continue
		}
		if c, ok := n.(*ast.CallNode); ok && guardCallee(c) {
			// The guard's own calls take the Env for its budget and
			// clock only (guard.go).
			inner[c.Arguments[0]] = true
		}
		if id, ok := n.(*ast.IdentifierNode); ok && id.Value == "$env" {
			return wholeShape
		}
		path, within, ok := bodyPath(n)
		if !ok {
			continue
		}
		for _, w := range within {
			inner[w] = true
		}
		if s = s.union(pathShape(path)); s.whole {
			return s
		}
	}
	return s
}

func guardCallee(c *ast.CallNode) bool {
	id, ok := c.Callee.(*ast.IdentifierNode)
	return ok && strings.HasPrefix(id.Value, guardPrefix) && len(c.Arguments) > 0
}

type collect struct{ nodes *[]ast.Node }

func (c collect) Visit(n *ast.Node) { *c.nodes = append(*c.nodes, *n) }

// bodyPath reads n as a chain of constant members off body, and returns
// the members' names and the nodes of the chain below n.
func bodyPath(n ast.Node) (path []string, within []ast.Node, ok bool) {
	for {
		switch x := n.(type) {
		case *ast.ChainNode:
			n = x.Node
		case *ast.MemberNode:
			name, isName := x.Property.(*ast.StringNode)
			if !isName || x.Method {
				return nil, nil, false
			}
			path = append(path, name.Value)
			n = x.Node
		case *ast.IdentifierNode:
			if x.Value != "body" {
				return nil, nil, false
			}
			slices.Reverse(path)
			return path, within, true
		default:
			return nil, nil, false
		}
		within = append(within, n)
	}
}

// BodyShape is what p reads of the payload (nil for a nil p).
func (p *Program) BodyShape() *Shape {
	if p == nil {
		return nil
	}
	return p.body
}

// BodyShape is what the conditions of s read of the payload.
func (s *Set) BodyShape() *Shape {
	if s == nil {
		return nil
	}
	var u *Shape
	for _, r := range s.Rules {
		u = u.union(r.When.BodyShape())
	}
	return u
}

// BodyShape is what t's interpolations read of the payload (nil for a
// nil t).
func (t *Template) BodyShape() *Shape {
	if t == nil {
		return nil
	}
	var u *Shape
	for _, pt := range t.parts {
		u = u.union(pt.prog.BodyShape())
	}
	return u
}
