// gcbench is examples/bench/gc/gcbench.c (Hans Boehm's GCBench, after John
// Ellis and Pete Kovac) in Go: the same work, sizes, options, checks and
// output, so that report.c runs it as the Go peer of gcbench.wbgc,
// gcbench.boehm and gcbench.malloc.
//
// The work: a "stretch" tree of depth 18 is built and dropped; a long-lived
// tree of depth 16 and a []float64 of 500,000 (never scanned: it holds no
// pointers) are built and kept to the end; then for depth d = 4, 6, ... 16
// the program builds 2 * treeSize(18) / treeSize(d) trees top-down and as
// many bottom-up, dropping each. A node is {left, right *Node; i, j int32}:
// 24 bytes, as in C. With --threads N > 1, N goroutines each do the whole
// loop over depths while the main goroutine waits. Checks: the last tree of
// each kind at each depth, the long-lived tree and the array are counted or
// read back at the end; a wrong answer exits 1. One difference is Go's own:
// the root of each top-down tree and of the long-lived tree never leaves its
// function, so escape analysis puts it on the goroutine's stack (one 24-byte
// node per top-down tree, about 0.3% of the nodes, that the C version takes
// from its heap).
//
// Pauses: one per GC cycle, runtime.MemStats.PauseNs, which in Go is the sum
// of the cycle's stop-the-world phases (usually two: sweep termination and
// mark termination), read without stopping the world every 5 ms; the number
// of single stops and the longest one come from runtime/metrics'
// /gc/pauses:seconds histogram. ../gcb/gcb.go says precisely what PauseNs
// holds (checked in Go 1.19's src/runtime/mgc.go) and how it is read.
//
//	./build.sh                       # builds build/gcb/gcbench.go (when go is installed)
//	build/gcb/gcbench.go --threads 2
//	build/gcb/gcbench.go --demo
//
// Options: --mode conc (Go's only mode), --threads N (default 1), --quick
// (depths 14/12/12 and a 50,000-float64 slice), --demo (depths 20/18/18 and
// a plain-words account).
package main

import (
	"fmt"
	"os"
	"sync"

	"wbgcbench/gcb"
)

type Node struct {
	left, right *Node
	i, j        int32
}

var S = struct {
	stretch, longLived, minDepth, maxDepth, arraySize int
}{18, 16, 4, 16, 500000}

func treeSize(d int) int { return 1<<(d+1) - 1 }
func numIters(d int) int { return 2 * treeSize(S.stretch) / treeSize(d) }

// populate, top-down: n exists; give it two children, then fill those in.
func populate(depth int, n *Node) {
	if depth <= 0 {
		return
	}
	depth--
	n.left, n.right = &Node{}, &Node{}
	populate(depth, n.left)
	populate(depth, n.right)
}

// makeTree, bottom-up: the subtrees first, then the node that holds them.
func makeTree(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{left: makeTree(depth - 1), right: makeTree(depth - 1)}
}

func countTree(n *Node) int {
	if n == nil {
		return 0
	}
	return 1 + countTree(n.left) + countTree(n.right)
}

// timeConstruction is the timed loop of the classic; "" or what went wrong.
func timeConstruction(depth int) string {
	iters, bad := numIters(depth), ""
	for i := 0; i < iters; i++ {
		n := &Node{}
		populate(depth, n)
		if i == iters-1 && countTree(n) != treeSize(depth) {
			bad = "top-down tree has the wrong size"
		}
	}
	for i := 0; i < iters; i++ {
		n := makeTree(depth)
		if i == iters-1 && countTree(n) != treeSize(depth) {
			bad = "bottom-up tree has the wrong size"
		}
	}
	return bad
}

func allDepths() string {
	bad := ""
	for d := S.minDepth; d <= S.maxDepth; d += 2 {
		if b := timeConstruction(d); b != "" {
			bad = b
		}
	}
	return bad
}

func usage(f *os.File) {
	fmt.Fprintf(f, "usage: gcbench [--mode M] [--threads N] [--quick | --demo]\n")
}

func main() {
	mode, threads, demo := "", 1, false
	args := os.Args
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--mode" && i+1 < len(args):
			i++
			mode = args[i]
		case a == "--threads" && i+1 < len(args):
			i++
			threads = gcb.Atoi(args[i])
		case a == "--quick":
			S.stretch, S.longLived, S.maxDepth, S.arraySize = 14, 12, 12, 50000
		case a == "--demo":
			demo = true
			S.stretch, S.longLived, S.maxDepth, S.arraySize = 20, 18, 18, 500000
		case a == "--help":
			usage(os.Stdout)
			return
		default:
			usage(os.Stderr)
			os.Exit(2)
		}
	}
	if threads < 1 || threads > 64 {
		usage(os.Stderr)
		os.Exit(2)
	}

	r := gcb.Init("gcbench", mode, demo)
	if demo {
		fmt.Printf("GCBench: builds and drops binary trees of 24-byte nodes, at %d growing\n"+
			"depths, while keeping one tree and one array alive throughout.\n",
			(S.maxDepth-S.minDepth)/2+1)
	}
	bad := ""

	n := makeTree(S.stretch)
	if countTree(n) != treeSize(S.stretch) {
		bad = "stretch tree has the wrong size"
	}
	n = nil

	longLived := &Node{}
	populate(S.longLived, longLived)
	array := make([]float64, S.arraySize)
	for i := 0; i < S.arraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}
	for i := S.arraySize / 2; i < S.arraySize; i++ {
		array[i] = 0.0 // as in C (Java zeroes it; so does make)
	}

	if threads == 1 {
		if b := allDepths(); b != "" {
			bad = b
		}
	} else {
		w := make([]string, threads)
		var wg sync.WaitGroup
		for k := range w {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				w[k] = allDepths()
			}(k)
		}
		wg.Wait()
		for _, b := range w {
			if b != "" {
				bad = b
			}
		}
	}

	if countTree(longLived) != treeSize(S.longLived) {
		bad = "long-lived tree has the wrong size"
	}
	if array[1000] != 1.0/1000 {
		bad = "array lost its contents"
	}
	live := uint64(treeSize(S.longLived))*24 + uint64(S.arraySize)*8
	if bad == "" {
		bad = "ok"
	}
	os.Exit(r.Done(bad, live))
}
