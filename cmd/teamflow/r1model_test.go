package main

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The porcupine model of RELIABILITY R1 (used by the e2e fault test): each
// task is a register holding (version, title), written by create and by
// PATCH with If-Match (compare-and-set on the version), read by a
// linearizable GET. A write whose outcome the client could not learn (a
// timeout, a connection cut by a kill, a 5xx) returns at +∞ with an unknown
// output: it may or may not have taken effect, at any time after its call.

type r1Kind byte

const (
	r1Create r1Kind = 'c'
	r1CAS    r1Kind = 'w'
	r1Read   r1Kind = 'r'
)

type r1Input struct {
	Kind   r1Kind
	Key    string // task ID
	Expect uint64 // CAS: the If-Match version
	Title  string // create, CAS: the title written
}

type r1Output struct {
	Unknown bool   // the outcome is not known (return at +∞)
	OK      bool   // CAS applied (false: 412)
	Version uint64 // create, CAS ok, read: the version answered
	Title   string // read: the title answered
}

type r1State struct {
	Version uint64 // 0: the task does not exist yet
	Title   string
}

// r1Forever is the return time of an operation with an unknown outcome.
const r1Forever = math.MaxInt64

var r1Model = (&porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(r1Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []interface{} { return []interface{}{r1State{}} },
	Step: func(state, input, output interface{}) []interface{} {
		st, in, out := state.(r1State), input.(r1Input), output.(r1Output)
		switch in.Kind {
		case r1Create:
			next := r1State{Version: 1, Title: in.Title}
			switch {
			case st.Version != 0:
				return nil
			case out.Unknown:
				return []interface{}{st, next}
			case out.Version == 1:
				return []interface{}{next}
			}
			return nil
		case r1CAS:
			next := r1State{Version: in.Expect + 1, Title: in.Title}
			matches := st.Version == in.Expect && st.Version != 0
			switch {
			case out.Unknown && matches:
				return []interface{}{st, next}
			case out.Unknown:
				return []interface{}{st}
			case out.OK && matches && out.Version == next.Version:
				return []interface{}{next}
			case !out.OK && !matches:
				return []interface{}{st}
			}
			return nil
		case r1Read:
			if st.Version == out.Version && st.Title == out.Title {
				return []interface{}{st}
			}
			return nil
		}
		return nil
	},
}).ToModel()

// The model accepts a linearizable history, with an unknown write that may
// apply late, and rejects a stale read and a lost acknowledged write: the
// checker can see the bug class R1 looks for.
func TestR1ModelSeesStaleReads(t *testing.T) {
	op := func(client int, in r1Input, out r1Output, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	good := []porcupine.Operation{
		op(0, r1Input{Kind: r1Create, Key: "a", Title: "t0"}, r1Output{Version: 1}, 0, 10),
		op(1, r1Input{Kind: r1CAS, Key: "a", Expect: 1, Title: "t1"}, r1Output{OK: true, Version: 2}, 20, 30),
		op(2, r1Input{Kind: r1CAS, Key: "a", Expect: 2, Title: "t2"}, r1Output{Unknown: true}, 31, r1Forever),
		op(0, r1Input{Kind: r1Read, Key: "a"}, r1Output{Version: 2, Title: "t1"}, 40, 50),
		op(1, r1Input{Kind: r1CAS, Key: "a", Expect: 1, Title: "x"}, r1Output{OK: false}, 51, 60),
		op(0, r1Input{Kind: r1Read, Key: "a"}, r1Output{Version: 3, Title: "t2"}, 70, 80),
	}
	if r := porcupine.CheckOperationsTimeout(r1Model, good, 10*time.Second); r != porcupine.Ok {
		t.Fatalf("linearizable history judged %v", r)
	}
	stale := append(good[:4:4], op(1, r1Input{Kind: r1Read, Key: "a"}, r1Output{Version: 1, Title: "t0"}, 55, 65))
	if r := porcupine.CheckOperationsTimeout(r1Model, stale, 10*time.Second); r != porcupine.Illegal {
		t.Fatalf("stale read judged %v", r)
	}
	lost := []porcupine.Operation{
		op(0, r1Input{Kind: r1Create, Key: "b", Title: "t0"}, r1Output{Version: 1}, 0, 10),
		op(1, r1Input{Kind: r1CAS, Key: "b", Expect: 1, Title: "t1"}, r1Output{OK: true, Version: 2}, 20, 30),
		op(0, r1Input{Kind: r1CAS, Key: "b", Expect: 1, Title: "t9"}, r1Output{OK: true, Version: 2}, 40, 50),
	}
	if r := porcupine.CheckOperationsTimeout(r1Model, lost, 10*time.Second); r != porcupine.Illegal {
		t.Fatalf("a CAS that overwrote an acknowledged one judged %v", r)
	}
}
