package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// ExprError is a compile error located inside an expression's source. Line
// and Column are 1-based within that source (Column counts characters);
// Msg is expr's message without the source snippet, so that the caller can
// place it in its own file.
type ExprError struct {
	Line, Column int
	Msg          string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("%s (%d:%d)", e.Msg, e.Line, e.Column)
}

// Program is an expr program compiled once against Env. It is safe for
// concurrent use.
type Program struct {
	src  string
	prog *vm.Program
	// fields are those a condition reads, for its trace; none for other
	// programs.
	fields []field
	body   *Shape // what it reads of the payload
}

// CompileCondition compiles a rule condition. Its result must be a boolean:
// an expression that can be anything (such as a bare body.flag) is refused
// too, because a typo there would silently never match. Errors are *ExprError.
func CompileCondition(src string) (*Program, error) {
	p, err := compile(src, expr.AsBool())
	if err != nil {
		return nil, err
	}
	if t := p.prog.Node().Type(); t == nil || t.Kind() != reflect.Bool {
		return nil, &ExprError{Line: 1, Column: 1, Msg: "a condition must be a boolean expression, but this one can be of any type (compare it, e.g. body.paid == true)"}
	}
	p.fields = fields(src)
	return p, nil
}

// CompileValue compiles an expression whose result may be of any type.
// Errors are *ExprError.
func CompileValue(src string) (*Program, error) {
	return compile(src)
}

func compile(src string, opts ...expr.Option) (*Program, error) {
	opts = append([]expr.Option{expr.Env(Env{}), expr.Patch(nilSafe{}), expr.Patch(guard{})}, opts...)
	opts = append(opts, guardOptions...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, exprError(err)
	}
	return &Program{src: src, prog: prog, body: bodyShape(prog.Node())}, nil
}

// exprError turns an expr compile error into an *ExprError.
func exprError(err error) *ExprError {
	var fe *file.Error
	if errors.As(err, &fe) {
		line := max(fe.Line, 1)
		return &ExprError{Line: line, Column: fe.Column + 1, Msg: unguarded(fe.Message)}
	}
	// The checker reports a wrong result type without a position: it is
	// about the expression as a whole.
	return &ExprError{Line: 1, Column: 1, Msg: unguarded(err.Error())}
}

// unguarded names a guarded builtin as it was written.
func unguarded(msg string) string {
	return strings.ReplaceAll(msg, "call "+guardPrefix, "call ")
}

// nilSafe makes every member access into dynamic data (body and what it
// holds) behave as if written with ?.: on a payload without data,
// body.data.id is nil instead of an error, so that body.data.id == 1 is
// simply false. Fields of typed values (event.id) are left as they are:
// the checker already refuses a wrong name there.
type nilSafe struct{}

func (nilSafe) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return
	}
	if t := m.Node.Type(); t == nil || t.Kind() != reflect.Interface {
		return
	}
	m.Optional = true
	// The compiler only honours Optional inside a chain: the chain is where
	// a nil short-circuits to.
	ast.Patch(node, &ast.ChainNode{Node: m})
}

// Source is the expression as written.
func (p *Program) Source() string { return p.src }

// Run evaluates p against env, within env's budget (see Env.Limit; an Env
// without one gets DefaultLimits for this run alone). A run error names the
// expression and the place in it, on one line; one over budget wraps
// ErrOverBudget.
func (p *Program) Run(env Env) (any, error) {
	if env.budget == nil {
		env.budget = newBudget(DefaultLimits)
	}
	b := env.budget
	defer b.endRun()
	machine := vm.VM{MemoryBudget: b.vmElements()}
	out, err := machine.Run(p.prog, &env)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) && fe.Message == vmMemoryExceeded {
			// expr's own count of elements, or its cap on repeat().
			fe.Message = fmt.Sprintf("%v: would allocate more than %s", ErrOverBudget, formatBytes(b.limits.Memory))
			err = &overBudget{err}
		}
		return nil, &runError{src: p.src, err: err}
	}
	return out, nil
}

// vmMemoryExceeded is the message of expr's own memory limit.
const vmMemoryExceeded = "memory budget exceeded"

// overBudget marks an error of expr's own memory limit as ErrOverBudget.
type overBudget struct{ error }

func (e *overBudget) Unwrap() error        { return e.error }
func (e *overBudget) Is(target error) bool { return target == ErrOverBudget }

// runError is an evaluation failure; it keeps expr's error for errors.As but
// prints without the multi-line source snippet, so that it fits a log line
// and an attempt record.
type runError struct {
	src string
	err error
}

func (e *runError) Error() string {
	var fe *file.Error
	if errors.As(e.err, &fe) {
		return fmt.Sprintf("%s: %s (%d:%d)", e.src, fe.Message, fe.Line, fe.Column+1)
	}
	return fmt.Sprintf("%s: %v", e.src, e.err)
}

func (e *runError) Unwrap() error { return e.err }

// KeyString runs p and turns the result into an idempotency key: strings as
// they are, numbers in plain decimal, anything else as JSON. A nil, empty or
// whitespace-only result is an error: such a key would make unrelated events
// duplicates of each other.
func (p *Program) KeyString(env Env) (string, error) {
	v, err := p.Run(env)
	if err != nil {
		return "", err
	}
	if isEmpty(v) {
		return "", fmt.Errorf("%s: idempotency key is empty", p.src)
	}
	s, err := formatValue(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.src, err)
	}
	return s, nil
}
