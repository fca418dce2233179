package rules

// The guard: every expression is compiled so that what a payload can make
// it do is paid for from its Env's budget before it is done. Loops tick the
// budget once per iteration; operations whose result or running time grows
// with their input (string +, repeat, replace, join, toJSON, sort, regular
// expressions from the payload, ...) are routed through guarded versions
// that charge the size of their result, or the time they will take, and
// refuse before allocating when the budget would be overdrawn. The guarded
// versions call expr's own builtins once the charge is paid, so an
// expression means exactly what it meant without the guard.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// The guards' names contain a space: no expression can call them.
const (
	tickName    = "guard tick"
	loopName    = "guard loop"
	addName     = "guard +"
	matchesName = "guard matches"
	sortByName  = "guard sortBy"
	groupByName = "guard groupBy"
	nowName     = "guard now"
	guardPrefix = "guard "
)

var anyType = reflect.TypeOf((*any)(nil)).Elem()

// guardFunc is the guarded form of a builtin: it charges b for args, then
// (usually) calls the builtin.
type guardFunc func(b *budget, args []any) (any, error)

// guardedBuiltins are the builtins whose result can be large or whose
// running time is more than linear in their input.
var guardedBuiltins = map[string]guardFunc{
	"repeat":     guardRepeat,
	"replace":    guardReplace,
	"join":       guardJoin,
	"split":      guardSplit,
	"splitAfter": guardSplit,
	"upper":      guardCase,
	"lower":      guardCase,
	"string":     guardString,
	"toJSON":     guardToJSON,
	"fromJSON":   guardFromJSON,
	"toBase64":   guardToBase64,
	"fromBase64": guardFromBase64,
	"concat":     guardConcat,
	"flatten":    guardFlatten,
	"sort":       guardSort,
	"reverse":    guardElements(16),
	"keys":       guardElements(16),
	"values":     guardElements(16),
	"toPairs":    guardElements(48),
	"fromPairs":  guardElements(bytesPerValue),
	"median":     guardMedian,
	"uniq":       guardUniq,
	"trim":       guardTrim,
}

// guardOptions registers the guards with the compiler.
var guardOptions = func() []expr.Option {
	opts := []expr.Option{
		function(tickName, func(b *budget, args []any) (any, error) { return args[0], b.tick() }, passThrough),
		function(loopName, func(b *budget, args []any) (any, error) { return args[0], b.step(length(args[0])) }, passThrough),
		function(sortByName, guardSortBy, passThrough),
		function(groupByName, guardGroupBy, passThrough),
		function(addName, guardAdd, validateAdd),
		function(matchesName, guardMatches, func([]reflect.Type) (reflect.Type, error) { return reflect.TypeOf(true), nil }),
		nowFunction(),
	}
	for name, g := range guardedBuiltins {
		orig := builtin.Builtins[builtin.Index[name]]
		g := g
		fn := &builtin.Function{
			Name: guardPrefix + name,
			Func: func(args ...any) (any, error) {
				b := args[0].(*Env).budget
				if _, err := g(b, args[1:]); err != nil {
					return nil, err
				}
				return invoke(orig, args[1:])
			},
		}
		if name == "uniq" {
			// uniq is quadratic: it is redone here with a tick per element.
			fn.Func = func(args ...any) (any, error) { return g(args[0].(*Env).budget, args[1:]) }
		}
		if orig.Validate != nil {
			fn.Validate = func(args []reflect.Type) (reflect.Type, error) { return orig.Validate(args[1:]) }
		}
		for _, t := range orig.Types {
			fn.Types = append(fn.Types, withEnvParam(t))
		}
		opts = append(opts, func(c *conf.Config) { c.Functions[fn.Name] = fn })
	}
	return opts
}()

// function registers a guard that is not a builtin's.
func function(name string, g guardFunc, validate func([]reflect.Type) (reflect.Type, error)) expr.Option {
	fn := &builtin.Function{
		Name:     name,
		Func:     func(args ...any) (any, error) { return g(args[0].(*Env).budget, args[1:]) },
		Validate: validate,
	}
	return func(c *conf.Config) { c.Functions[name] = fn }
}

// nowFunction is now() reading the Env's time (see Env.At) when it has
// one, and the clock otherwise; expr's own now() decides the types.
func nowFunction() expr.Option {
	orig := builtin.Builtins[builtin.Index["now"]]
	fn := &builtin.Function{
		Name: nowName,
		Func: func(args ...any) (any, error) {
			at := args[0].(*Env).at
			if at.IsZero() {
				return invoke(orig, args[1:])
			}
			if len(args) == 2 {
				if tz, ok := args[1].(*time.Location); ok {
					return at.In(tz), nil
				}
			}
			if len(args) != 1 {
				return nil, fmt.Errorf("invalid number of arguments (expected 0, got %d)", len(args)-1)
			}
			return at, nil
		},
		Validate: func(args []reflect.Type) (reflect.Type, error) { return orig.Validate(args[1:]) },
	}
	return func(c *conf.Config) { c.Functions[fn.Name] = fn }
}

// passThrough types a guard that returns its second argument.
func passThrough(args []reflect.Type) (reflect.Type, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("internal: guard called with %d arguments", len(args))
	}
	return args[1], nil
}

// withEnvParam is t with the Env prepended to its parameters.
func withEnvParam(t reflect.Type) reflect.Type {
	in := []reflect.Type{anyType}
	for i := range t.NumIn() {
		in = append(in, t.In(i))
	}
	out := make([]reflect.Type, t.NumOut())
	for i := range out {
		out[i] = t.Out(i)
	}
	return reflect.FuncOf(in, out, t.IsVariadic())
}

func invoke(f *builtin.Function, args []any) (any, error) {
	switch {
	case f.Func != nil:
		return f.Func(args...)
	case f.Safe != nil:
		v, _, err := f.Safe(args...)
		return v, err
	default:
		return f.Fast(args[0]), nil
	}
}

// guard is the AST patcher that inserts the guards. It runs after nilSafe,
// on a type-checked tree.
type guard struct{}

func (guard) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if loops[n.Name] {
			guardLoop(n)
		} else if n.Name == "now" {
			ast.Patch(node, guardCall(nowName, n.Arguments...))
		} else if _, ok := guardedBuiltins[n.Name]; ok {
			ast.Patch(node, guardCall(guardPrefix+n.Name, n.Arguments...))
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "+":
			// Numbers, times and durations add in constant space.
			if k := n.Type().Kind(); k == reflect.String || k == reflect.Interface {
				ast.Patch(node, guardCall(addName, n.Left, n.Right))
			}
		case "matches":
			// A constant pattern is compiled once at load; any other is
			// compiled at each run, from data.
			if _, ok := n.Right.(*ast.StringNode); !ok {
				ast.Patch(node, guardCall(matchesName, n.Left, n.Right))
			}
		}
	}
}

// loops are the builtins that run their predicate (or, for count and sum
// without one, nothing) once per element.
var loops = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"count": true, "sum": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// guardLoop makes a loop pay for its iterations: a predicate that can cost
// more than a few operations (another loop, a call, a comparison of two
// values from the payload) ticks the budget at each one; a loop whose
// predicate cannot is charged for all of them before it starts, which is
// as safe and costs one call instead of one per element.
func guardLoop(n *ast.BuiltinNode) {
	charge := loopName
	switch n.Name {
	case "sortBy":
		charge = sortByName
	case "groupBy":
		charge = groupByName
	}
	if len(n.Arguments) > 1 {
		if pred, ok := n.Arguments[1].(*ast.PredicateNode); ok && !cheap(pred.Node) {
			ast.Patch(&pred.Node, guardCall(tickName, pred.Node))
			if charge == loopName {
				return
			}
		}
	}
	ast.Patch(&n.Arguments[0], guardCall(charge, n.Arguments[0]))
}

// cheap reports whether evaluating node takes a bounded number of steps,
// each independent of the size of the payload.
func cheap(node ast.Node) bool {
	switch n := node.(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode,
		*ast.IdentifierNode, *ast.PointerNode:
		return true
	case *ast.MemberNode:
		return cheap(n.Node) && cheap(n.Property)
	case *ast.ChainNode:
		return cheap(n.Node)
	case *ast.UnaryNode:
		return cheap(n.Node)
	case *ast.ConditionalNode:
		return cheap(n.Cond) && cheap(n.Exp1) && cheap(n.Exp2)
	case *ast.BuiltinNode:
		return n.Name == "len" && len(n.Arguments) == 1 && cheap(n.Arguments[0])
	case *ast.BinaryNode:
		if !cheap(n.Left) || !cheap(n.Right) {
			return false
		}
		switch n.Operator {
		case "and", "or", "&&", "||", "??", "-", "*", "/", "%", "**", "^":
			return true
		case "==", "!=", "<", ">", "<=", ">=":
			// Two values from the payload may be long strings or deep
			// lists; one of them a literal, the comparison is short.
			return literal(n.Left) || literal(n.Right)
		}
	}
	return false
}

func literal(node ast.Node) bool {
	switch node.(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode:
		return true
	}
	return false
}

func guardCall(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: name},
		Arguments: append([]ast.Node{&ast.IdentifierNode{Value: "$env"}}, args...),
	}
}

// Time estimates, in nanoseconds, for work done in one go.
const (
	nsPerCompare = 30 // one comparison of two values in a sort
	nsPerRegexOp = 2  // one instruction of a regular expression on one byte
)

func sortWork(n int) int64 {
	if n < 2 {
		return 0
	}
	return int64(n) * int64(bits.Len(uint(n))) * nsPerCompare
}

func guardAdd(b *budget, args []any) (any, error) {
	if x, ok := args[0].(string); ok {
		if y, ok := args[1].(string); ok {
			if err := b.alloc(int64(len(x)) + int64(len(y))); err != nil {
				return nil, err
			}
			return x + y, nil
		}
	}
	return runtime.Add(args[0], args[1]), nil
}

func validateAdd(args []reflect.Type) (reflect.Type, error) {
	l, r := args[1], args[2]
	switch {
	case l.Kind() == reflect.String && r.Kind() == reflect.String:
		return reflect.TypeOf(""), nil
	case l.Kind() == reflect.Interface || r.Kind() == reflect.Interface:
		return anyType, nil
	}
	return nil, fmt.Errorf("invalid operation: + (mismatched types %s and %s)", l, r)
}

func guardMatches(b *budget, args []any) (any, error) {
	if runtime.IsNil(args[0]) || runtime.IsNil(args[1]) {
		return false, nil
	}
	pattern := args[1].(string)
	if err := b.alloc(int64(len(pattern)) * 8); err != nil {
		return nil, err
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, err
	}
	// Compiled, a pattern costs about its instructions, which repeats
	// multiply: charge them, and the time to run them over the text.
	insts := progSize(re)
	n := int64(length(args[0]))
	if err := b.alloc(insts * 64); err != nil {
		return nil, err
	}
	if err := b.work((n + 1) * insts * nsPerRegexOp); err != nil {
		return nil, err
	}
	r, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	if s, ok := args[0].(string); ok {
		return r.MatchString(s), nil
	}
	return r.Match(args[0].([]byte)), nil
}

// progSize is an upper bound on the instructions re compiles to.
func progSize(re *syntax.Regexp) int64 {
	var n int64 = 1
	for _, sub := range re.Sub {
		n += progSize(sub)
	}
	switch re.Op {
	case syntax.OpLiteral, syntax.OpCharClass:
		n += int64(len(re.Rune))
	case syntax.OpRepeat:
		times := re.Max
		if times < 0 {
			times = re.Min + 1
		}
		n *= int64(max(times, 1))
	}
	return n
}

func guardSortBy(b *budget, args []any) (any, error) {
	n := length(args[0])
	if err := b.step(n); err != nil {
		return nil, err
	}
	if err := b.alloc(int64(n) * 32); err != nil {
		return nil, err
	}
	if err := b.work(sortWork(n)); err != nil {
		return nil, err
	}
	return args[0], nil
}

func guardGroupBy(b *budget, args []any) (any, error) {
	if err := b.step(length(args[0])); err != nil {
		return nil, err
	}
	if err := b.alloc(int64(length(args[0])) * 48); err != nil {
		return nil, err
	}
	return args[0], nil
}

func guardRepeat(b *budget, args []any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, nil
	}
	n := runtime.ToInt(args[1])
	if n <= 0 || len(s) == 0 {
		return nil, nil
	}
	if n > math.MaxInt64/len(s) {
		return nil, b.alloc(-1)
	}
	return nil, b.alloc(int64(len(s)) * int64(n))
}

func guardReplace(b *budget, args []any) (any, error) {
	s, ok1 := args[0].(string)
	old, ok2 := args[1].(string)
	repl, ok3 := args[2].(string)
	if !ok1 || !ok2 || !ok3 {
		return nil, nil
	}
	k := int64(strings.Count(s, old))
	if len(args) == 4 {
		if n := runtime.ToInt(args[3]); n >= 0 {
			k = min(k, int64(n))
		}
	}
	grow := int64(len(repl)) - int64(len(old))
	if grow > 0 && k > (math.MaxInt64-int64(len(s)))/grow {
		return nil, b.alloc(-1)
	}
	return nil, b.alloc(int64(len(s)) + k*max(grow, 0))
}

func guardJoin(b *budget, args []any) (any, error) {
	glue := ""
	if len(args) == 2 {
		glue, _ = args[1].(string)
	}
	var size, n int64
	switch list := args[0].(type) {
	case []string:
		for _, s := range list {
			size += int64(len(s))
		}
		n = int64(len(list))
	case []any:
		for _, v := range list {
			if s, ok := v.(string); ok {
				size += int64(len(s))
			}
		}
		n = int64(len(list))
	}
	return nil, b.alloc(size + n*(int64(len(glue))+16))
}

func guardSplit(b *budget, args []any) (any, error) {
	s, ok1 := args[0].(string)
	sep, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, nil
	}
	parts := int64(strings.Count(s, sep)) + 1
	if len(args) == 3 {
		if n := runtime.ToInt(args[2]); n >= 0 {
			parts = min(parts, int64(n))
		}
	}
	return nil, b.alloc(parts * 16)
}

func guardCase(b *budget, args []any) (any, error) {
	s, _ := args[0].(string)
	// Changing case can turn a 2-byte letter into a 3-byte one.
	return nil, b.alloc(int64(len(s)) * 3 / 2)
}

func guardString(b *budget, args []any) (any, error) {
	if s, ok := args[0].(string); ok {
		return nil, b.alloc(int64(len(s)))
	}
	// fmt's %v is never more than twice the compact JSON of the same value.
	n, err := encodedSize(b, args[0], false)
	if err != nil {
		return nil, err
	}
	return nil, b.alloc(2*n + 32)
}

func guardToJSON(b *budget, args []any) (any, error) {
	n, err := encodedSize(b, args[0], true)
	if err != nil {
		return nil, err
	}
	// The indented form is made from the compact one.
	return nil, b.alloc(2 * n)
}

func guardFromJSON(b *budget, args []any) (any, error) {
	s, _ := args[0].(string)
	values := int64(1)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '[', '{':
			values++
		}
	}
	return nil, b.alloc(int64(len(s)) + values*bytesPerValue)
}

func guardToBase64(b *budget, args []any) (any, error) {
	s, _ := args[0].(string)
	return nil, b.alloc((int64(len(s))+2)/3*4 + int64(len(s)))
}

func guardFromBase64(b *budget, args []any) (any, error) {
	s, _ := args[0].(string)
	return nil, b.alloc(int64(len(s))/4*3*2 + 3)
}

func guardConcat(b *budget, args []any) (any, error) {
	var n int64
	for _, a := range args {
		n += int64(length(a))
	}
	// concat grows its result by appending: up to twice the final size.
	return nil, b.alloc(n * 32)
}

func guardFlatten(b *budget, args []any) (any, error) {
	var leaves int64
	var count func(v reflect.Value, depth int) error
	count = func(v reflect.Value, depth int) error {
		if depth > builtin.MaxDepth {
			return builtin.ErrorMaxDepth
		}
		for i := range v.Len() {
			e := reflect.ValueOf(v.Index(i).Interface())
			if k := e.Kind(); k == reflect.Slice || k == reflect.Array {
				if err := count(e, depth+1); err != nil {
					return err
				}
				continue
			}
			leaves++
		}
		return b.tick()
	}
	v := reflect.ValueOf(args[0])
	if k := v.Kind(); k != reflect.Slice && k != reflect.Array {
		return nil, nil
	}
	if err := count(v, 0); err != nil {
		return nil, err
	}
	return nil, b.alloc(leaves * 32)
}

func guardSort(b *budget, args []any) (any, error) {
	n := length(args[0])
	if err := b.alloc(int64(n) * 16); err != nil {
		return nil, err
	}
	return nil, b.work(sortWork(n))
}

func guardMedian(b *budget, args []any) (any, error) {
	var n int
	for _, a := range args {
		n += length(a)
	}
	if err := b.alloc(int64(n) * 16); err != nil {
		return nil, err
	}
	return nil, b.work(sortWork(n))
}

// guardElements charges size bytes per element of the argument.
func guardElements(size int64) guardFunc {
	return func(b *budget, args []any) (any, error) {
		if len(args) == 0 {
			return nil, nil
		}
		return nil, b.alloc(int64(length(args[0])) * size)
	}
}

// guardUniq is expr's uniq, which compares each element with every kept
// one, with a tick per element.
// guardTrim charges trim with a cutset beyond ASCII, which looks each rune
// of the text up in the cutset.
func guardTrim(b *budget, args []any) (any, error) {
	if len(args) != 2 {
		return nil, nil
	}
	s, _ := args[0].(string)
	cutset, _ := args[1].(string)
	for i := 0; i < len(cutset); i++ {
		if cutset[i] >= utf8.RuneSelf {
			return nil, b.work(int64(len(s)) * int64(len(cutset)) / 4)
		}
	}
	return nil, nil
}

func guardUniq(b *budget, args []any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("invalid number of arguments (expected 1, got %d)", len(args))
	}
	v := reflect.ValueOf(args[0])
	if v.Kind() != reflect.Array && v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("cannot uniq %s", v.Kind())
	}
	if err := b.alloc(int64(v.Len()) * 16); err != nil {
		return nil, err
	}
	ret := []any{}
outer:
	for i := range v.Len() {
		if err := b.tick(); err != nil {
			return nil, err
		}
		x := v.Index(i).Interface()
		for _, r := range ret {
			if runtime.Equal(x, r) {
				continue outer
			}
		}
		ret = append(ret, x)
	}
	return ret, nil
}

// length is the number of elements of a string, list or map; 0 for
// anything else.
func length(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case string:
		return len(x)
	case map[string]any:
		return len(x)
	case nil:
		return 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map, reflect.String, reflect.Chan:
		return rv.Len()
	}
	return 0
}

// encodedSize is an upper bound on the size of v encoded as JSON, compact
// or indented by two spaces per level (as toJSON does). The walk ticks the
// budget and stops once the size passes what the budget has left.
func encodedSize(b *budget, v any, indent bool) (int64, error) {
	s := sizer{b: b, limit: b.limits.Memory - b.used, indent: indent}
	if !s.add(reflect.ValueOf(v), 0) {
		if s.err != nil {
			return 0, s.err
		}
		return 0, b.alloc(-1)
	}
	return s.n, nil
}

type sizer struct {
	b      *budget
	n      int64
	limit  int64
	indent bool
	steps  int
	err    error
}

var timeType = reflect.TypeOf(time.Time{})

func (s *sizer) add(v reflect.Value, depth int) bool {
	if s.n > s.limit {
		return false
	}
	if s.steps++; s.steps%256 == 0 {
		if s.err = s.b.tick(); s.err != nil {
			return false
		}
	}
	if depth > 1000 {
		s.err = builtin.ErrorMaxDepth
		return false
	}
	// Each element of a container: a separator, and when indented a
	// newline, its indentation and the space after a key's colon.
	sep := int64(1)
	if s.indent {
		sep += 2 + 2*int64(depth+1)
	}
	switch v.Kind() {
	case reflect.Invalid:
		s.n += 4
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			s.n += 4
			return true
		}
		return s.add(v.Elem(), depth)
	case reflect.Bool:
		s.n += 5
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		s.n += 24
	case reflect.String:
		s.n += quotedSize(v.String())
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 { // base64
			s.n += int64(v.Len())*4/3 + 6
			return true
		}
		s.n += 2 + 2*int64(depth)
		for i := range v.Len() {
			s.n += sep
			if !s.add(v.Index(i), depth+1) {
				return false
			}
		}
	case reflect.Map:
		s.n += 2 + 2*int64(depth)
		it := v.MapRange()
		for it.Next() {
			s.n += sep + 1
			if !s.add(it.Key(), depth+1) || !s.add(it.Value(), depth+1) {
				return false
			}
		}
	case reflect.Struct:
		if v.Type() == timeType {
			s.n += 40
			return true
		}
		// Encoded by encoding/json's rules: a small value here (EventInfo).
		b, err := json.Marshal(v.Interface())
		if err != nil {
			s.err = err
			return false
		}
		s.n += int64(len(b)) * 2
	default:
		s.n += 16
	}
	return s.n <= s.limit
}

// quotedSize bounds the JSON form of s: control characters and <, >, & take
// six bytes, quotes and backslashes two, and every byte of invalid UTF-8
// becomes a six-byte \ufffd.
func quotedSize(s string) int64 {
	valid := utf8.ValidString(s)
	n := int64(2)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == '"' || c == '\\':
			n += 2
		case c >= 0x80 && !valid:
			n += 6
		case c >= 0x80:
			n += 2
		default:
			n++
		}
	}
	return n
}
