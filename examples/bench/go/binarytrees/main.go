// binarytrees is examples/bench/gc/binarytrees.c (the Benchmarks Game's
// binary-trees) in Go: the same work, sizes, options, checks and output, so
// that report.c runs it as the Go peer of binarytrees.wbgc, .boehm, .malloc.
//
// For a maximum depth N (default 21): a stretch tree of depth N+1 is built,
// checked and dropped; a long-lived tree of depth N is built and kept to the
// end; then for d = 4, 6, ... N, 2^(N - d + 4) trees of depth d are built
// bottom-up, checked (the node count) and dropped. Nodes are {left, right
// *Node}: 16 bytes, as in C. With --threads T the iterations of every depth
// are split among T goroutines (iteration i goes to goroutine i % T); the
// main goroutine waits for them. Output: the game's lines, whose check values
// are also compared with the exact node counts; a mismatch exits 1.
//
// Pauses: one per GC cycle, runtime.MemStats.PauseNs, which in Go is the sum
// of the cycle's stop-the-world phases (usually two: sweep termination and
// mark termination), read without stopping the world every 5 ms; the number
// of single stops and the longest one come from runtime/metrics'
// /gc/pauses:seconds histogram. ../gcb/gcb.go says precisely what PauseNs
// holds (checked in Go 1.19's src/runtime/mgc.go) and how it is read.
//
//	build/gcb/binarytrees.go 21 --threads 2
//	build/gcb/binarytrees.go --quick
//
// Options: N (default 21), --threads T (default 1), --mode conc (Go's only
// mode), --quick (N = 16).
package main

import (
	"fmt"
	"os"
	"sync"

	"wbgcbench/gcb"
)

type Node struct{ left, right *Node }

func bottomUp(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{bottomUp(depth - 1), bottomUp(depth - 1)}
}

func (n *Node) check() int {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

const minDepth, maxDepths = 4, 32

var maxDepth, nthreads = 21, 1

func iterations(d int) int { return 1 << (maxDepth - d + minDepth) }

// work does goroutine k's share (iterations i % T == k) of every depth and
// returns its check sums per depth.
func work(k int) (sum [maxDepths]int) {
	for d := minDepth; d <= maxDepth; d += 2 {
		s := 0
		for i := k; i < iterations(d); i += nthreads {
			s += bottomUp(d).check()
		}
		sum[d] = s
	}
	return sum
}

func usage(f *os.File) {
	fmt.Fprintf(f, "usage: binarytrees [N] [--threads T] [--mode M] [--quick]\n")
}

func main() {
	mode, args := "", os.Args
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--mode" && i+1 < len(args):
			i++
			mode = args[i]
		case a == "--threads" && i+1 < len(args):
			i++
			nthreads = gcb.Atoi(args[i])
		case a == "--quick":
			maxDepth = 16
		case a == "--help":
			usage(os.Stdout)
			return
		case a != "" && a[0] >= '0' && a[0] <= '9':
			maxDepth = gcb.Atoi(a)
		default:
			usage(os.Stderr)
			os.Exit(2)
		}
	}
	if maxDepth < minDepth+2 {
		maxDepth = minDepth + 2
	}
	if maxDepth >= maxDepths-1 || nthreads < 1 || nthreads > 64 {
		usage(os.Stderr)
		os.Exit(2)
	}

	r := gcb.Init("binarytrees", mode, false)
	bad := ""

	c := bottomUp(maxDepth + 1).check()
	fmt.Printf("stretch tree of depth %d\t check: %d\n", maxDepth+1, c)
	if c != 1<<(maxDepth+2)-1 {
		bad = "stretch tree check"
	}

	longLived := bottomUp(maxDepth)

	sums := make([][maxDepths]int, nthreads)
	if nthreads == 1 {
		sums[0] = work(0)
	} else {
		var wg sync.WaitGroup
		for k := range sums {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				sums[k] = work(k)
			}(k)
		}
		wg.Wait()
	}
	for d := minDepth; d <= maxDepth; d += 2 {
		s := 0
		for k := range sums {
			s += sums[k][d]
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iterations(d), d, s)
		if s != iterations(d)*(1<<(d+1)-1) {
			bad = "trees check"
		}
	}

	c = longLived.check()
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxDepth, c)
	if c != 1<<(maxDepth+1)-1 {
		bad = "long lived tree check"
	}
	if bad == "" {
		bad = "ok"
	}
	os.Exit(r.Done(bad, uint64(c)*16))
}
