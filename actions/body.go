package actions

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hookrelay/hookrelay/rules"
)

// bodyValue is one node of a compiled body: a template leaf, a literal, an
// object or a list.
type bodyValue struct {
	path string
	tpl  *rules.Template
	lit  any
	obj  map[string]*bodyValue
	list []*bodyValue
}

func compileBody(path string, v any) (*bodyValue, error) {
	n := &bodyValue{path: path}
	switch x := v.(type) {
	case string:
		tpl, err := compileTemplate(path, x, nil)
		if err != nil {
			return nil, err
		}
		if tpl.IsLiteral() {
			n.lit = x
		} else {
			n.tpl = tpl
		}
	case map[string]any:
		n.obj = make(map[string]*bodyValue, len(x))
		for k, item := range x {
			c, err := compileBody(path+"."+k, item)
			if err != nil {
				return nil, err
			}
			n.obj[k] = c
		}
	case []any:
		n.list = make([]*bodyValue, len(x))
		for i, item := range x {
			c, err := compileBody(path+"."+strconv.Itoa(i), item)
			if err != nil {
				return nil, err
			}
			n.list[i] = c
		}
	default:
		// Numbers, booleans, null and anything else JSON can carry as it is.
		if _, err := json.Marshal(x); err != nil {
			return nil, &FieldError{Field: path, Err: fmt.Errorf("%T cannot be sent as JSON", x)}
		}
		n.lit = x
	}
	return n, nil
}

// bodyShape is what rendering n reads of the payload.
func (n *bodyValue) bodyShape() *rules.Shape {
	if n == nil {
		return nil
	}
	shapes := []*rules.Shape{n.tpl.BodyShape()}
	for _, c := range n.obj {
		shapes = append(shapes, c.bodyShape())
	}
	for _, c := range n.list {
		shapes = append(shapes, c.bodyShape())
	}
	return rules.Union(shapes...)
}

// render builds the value to marshal; errors name the leaf that failed.
func (n *bodyValue) render(env rules.Env) (any, error) {
	switch {
	case n.tpl != nil:
		v, err := n.tpl.Render(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.path, err)
		}
		return v, nil
	case n.obj != nil:
		m := make(map[string]any, len(n.obj))
		for k, c := range n.obj {
			v, err := c.render(env)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case n.list != nil:
		l := make([]any, len(n.list))
		for i, c := range n.list {
			v, err := c.render(env)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	return n.lit, nil
}
