// mutate is examples/bench/gc/mutate.c in Go: a large live graph whose
// pointers are rewritten all the time while garbage is allocated. The same
// work, sizes, random numbers, options, checks and output, so that report.c
// runs it as the Go peer of mutate.wbgc and mutate.boehm. Here Go's write
// barrier (on while a cycle marks), its mark assists and its marking of a big
// live set show.
//
// The graph: a table of N nodes (N chosen so that the whole graph is about
// --live-mb MiB, default 100: 874,000 nodes), each node 64 bytes {tag, 6
// edges, leaf}, each leaf 48 bytes {tag, owner, 4 words of data}. The edges
// start pointing at random nodes. Then --ops operations (default 16 M), each
// rewrites two random edges of random nodes, every second one replaces a
// node's leaf by a new one, and each allocates one 32-byte temporary that is
// dropped at once. The random numbers (xorshift64*, fixed seed) are drawn in
// the same order as in mutate.c, so the work and the printed sink are the
// same. At the end every node's tag, edges and leaf are checked; a wrong one
// exits 1.
//
// Pauses: one per GC cycle, runtime.MemStats.PauseNs, which in Go is the sum
// of the cycle's stop-the-world phases (usually two: sweep termination and
// mark termination), read without stopping the world every 5 ms; the number
// of single stops and the longest one come from runtime/metrics'
// /gc/pauses:seconds histogram. ../gcb/gcb.go says precisely what PauseNs
// holds (checked in Go 1.19's src/runtime/mgc.go) and how it is read.
//
//	build/gcb/mutate.go
//	build/gcb/mutate.go --live-mb 200 --ops 4000000
//	build/gcb/mutate.go --quick
//
// Options: --mode conc (Go's only mode), --live-mb N, --ops N, --quick
// (8 MiB, 1 M operations).
package main

import (
	"fmt"
	"math/bits"
	"os"
	"unsafe"

	"wbgcbench/gcb"
)

const nedge = 6
const nodeTag = 0x6e6f64655f5f5f5f // "node____" xor the node's index
const leafTag = 0x6c6561665f5f5f5f

type Node struct {
	tag  uint64
	edge [nedge]*Node
	leaf *Leaf
}

type Leaf struct {
	tag   uint64
	owner *Node
	data  [4]uint64
}

type Temp struct {
	a, b *Node
	x, y uint64
}

// the object sizes of mutate.c (a compile error if one differs)
var _ = [1]struct{}{}[unsafe.Sizeof(Node{})-64+unsafe.Sizeof(Leaf{})-48+unsafe.Sizeof(Temp{})-32]

// xorshift64*: the same sequence as mutate.c's
var rngState uint64 = 0x9e3779b97f4a7c15

func rng() uint64 {
	rngState ^= rngState >> 12
	rngState ^= rngState << 25
	rngState ^= rngState >> 27
	return rngState * 0x2545f4914f6cdd1d
}

// rnd: a number below n, without a division
func rnd(n int) int {
	hi, _ := bits.Mul64(rng(), uint64(n))
	return int(hi)
}

func newLeaf(owner *Node, id, gen uint64) *Leaf {
	return &Leaf{tag: leafTag ^ id, owner: owner, data: [4]uint64{gen, gen + 1, gen + 2, gen + 3}}
}

// newTemp allocates the short-lived temporary on the heap, as mutate.c does:
// a Temp that stays inside the loop body would otherwise go on the stack
// (escape analysis), and Go would skip the garbage the benchmark is about.
//
//go:noinline
func newTemp(a, b *Node, x, y uint64) *Temp {
	return &Temp{a: a, b: b, x: x, y: y}
}

func usage(f *os.File) {
	fmt.Fprintf(f, "usage: mutate [--mode M] [--live-mb N] [--ops N] [--quick]\n")
}

func main() {
	mode, liveMB, ops := "", 100, 16000000
	args := os.Args
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--mode" && i+1 < len(args):
			i++
			mode = args[i]
		case a == "--live-mb" && i+1 < len(args):
			i++
			liveMB = gcb.Atoi(args[i])
		case a == "--ops" && i+1 < len(args):
			i++
			ops = gcb.Atoi(args[i])
		case a == "--quick":
			liveMB, ops = 8, 1000000
		case a == "--help":
			usage(os.Stdout)
			return
		default:
			usage(os.Stderr)
			os.Exit(2)
		}
	}
	if liveMB < 1 || ops < 0 {
		usage(os.Stderr)
		os.Exit(2)
	}
	// per node: itself, its leaf, its table slot
	n := liveMB * 1024 * 1024 / (64 + 48 + 8)

	r := gcb.Init("mutate", mode, false)
	// the table holds the only references to the nodes no edge points at
	table := make([]*Node, n)
	for i := range table {
		x := &Node{tag: nodeTag ^ uint64(i)}
		table[i] = x
		x.leaf = newLeaf(x, uint64(i), 0)
	}
	for _, x := range table {
		for k := range x.edge {
			x.edge[k] = table[rnd(n)]
		}
	}

	var sink uint64
	for op := 0; op < ops; op++ {
		for w := 0; w < 2; w++ {
			a := table[rnd(n)]
			to := table[rnd(n)] // before the edge index, as in mutate.c
			a.edge[rnd(nedge)] = to
		}
		if op&1 != 0 {
			i := rnd(n)
			a := table[i]
			a.leaf = newLeaf(a, uint64(i), uint64(op))
		}
		a := table[rnd(n)]
		b := a.edge[rnd(nedge)]
		tmp := newTemp(a, b, uint64(op), b.tag)
		sink += tmp.y ^ tmp.a.tag
	}

	bad := ""
	for i := 0; i < n && bad == ""; i++ {
		x := table[i]
		if x.tag != nodeTag^uint64(i) {
			bad = "a node's tag changed"
		} else if x.leaf == nil || x.leaf.tag != leafTag^uint64(i) || x.leaf.owner != x {
			bad = "a leaf is wrong"
		}
		for k := 0; k < nedge && bad == ""; k++ {
			y := x.edge[k]
			if y == nil || y.tag^nodeTag >= uint64(n) || table[y.tag^nodeTag] != y {
				bad = "an edge points at a non-node"
			}
		}
	}
	fmt.Printf("mutate: %d nodes, %d operations (sink %x)\n", n, ops, sink&0xffff)
	if bad == "" {
		bad = "ok"
	}
	os.Exit(r.Done(bad, uint64(n)*(64+48+8)))
}
