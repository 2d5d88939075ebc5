// Package gcb is the Go twin of examples/bench/gc/gcb.h: it starts the clock
// and a sampler, and at the end writes the same results file (GCB_OUT) and the
// same last stdout line, so that examples/bench/gc/report.c reads a Go run
// exactly as it reads a wbgc, Boehm or malloc one. The programs beside it
// (gcbench, binarytrees, mutate) are the C programs of examples/bench/gc
// written in plain Go: new objects with &T{...}, plain pointer stores (the
// compiler adds Go's write barrier), goroutines for threads, and the runtime's
// defaults: GOGC=100 unless the environment says otherwise (the results file
// records the value in force), GOMAXPROCS = the CPUs.
//
// # What a Go pause is, and how it is read
//
// Go stops the world twice in a normal cycle: sweep termination (the start of
// the cycle, before concurrent marking) and mark termination (the end of
// marking). Both stops are counted from the moment the collector asks every
// goroutine to stop (before stopTheWorldWithSema, so the time to reach a safe
// point is included) to the restart. What runtime.MemStats.PauseNs holds,
// checked in Go 1.19.8's source (src/runtime/mgc.go):
//
//   - gcStart zeroes work.pauseNS (line 656), sets work.pauseStart (661)
//     before stopTheWorldWithSema (665) and, once startTheWorldWithSema has
//     returned (730), adds now - pauseStart (731): the sweep-termination stop.
//   - gcMarkDone sets pauseStart (850) before stopping the world for mark
//     termination (855). If a P still has work, it restarts the world, adds
//     that stop too (882-883) and marks on: a cycle can have three stops.
//   - gcMarkTermination adds now - pauseStart (1000) and stores
//     memstats.pause_ns[numgc % 256] = work.pauseNS (1005), then numgc++
//     (1038), then restarts the world (1059): the restart itself is left out
//     of the mark-termination stop.
//
// So PauseNs[k % 256] is the SUM of the stop-the-world phases of cycle k+1
// (usually two), not one pause: mstats.go's doc comment on PauseNs (lines
// 263-270) says as much. Each phase on its own goes only into a histogram,
// memstats.gcPauseDist (recorded at lines 733, 884 and 1002), which
// runtime/metrics exports as /gc/pauses:seconds, with 16 buckets per power of
// two (a bucket is at most 1/16 of its lower bound wide).
//
// What is written, then: one "p NS" line per GC cycle, its PauseNs entry:
// exact, but the sum of the cycle's stops, where wbgc's ring (and Boehm's
// stop-world events) hold every stop on its own. A Go cycle's "pause" is
// therefore at least its longest single stop and at most twice it in the
// usual two-stop cycle; the pause count is the cycle count. Beside them,
// "stw_phases N" and "stw_max_ns NS" give the number of single stops and the
// upper edge of the histogram bucket that holds the longest one, so the
// report can say how long Go's longest single stop was.
//
// How the ring is read without missing entries or adding stops of our own:
// runtime.ReadMemStats stops the world (mstats.go:355-364, "read mem stats";
// a stop that PauseNs and the histogram do not count, but that holds every
// goroutine all the same), so the 5 ms sampler does not call it every time.
// It reads runtime/metrics, which does not stop the world: the cycle count
// (/gc/cycles/total:gc-cycles, which is memstats.numgc, MemStats.NumGC) and
// the bytes in objects (/memory/classes/heap/objects:bytes, what
// MemStats.HeapAlloc reports, live and not yet swept: the same measure as
// wbgc's heap_alloc). Only when 128 or more cycles have ended since the ring
// was last read does it call ReadMemStats and take the new entries, as
// gcb.h's sampler does for wbgc's ring; and once more at the end. A cycle is
// lost (counted in "lost") only if more than 256 end between two reads: with
// 128 as the threshold, more than 128 within one 5 ms period. Most runs stop
// the world for ReadMemStats once, after the timed work. The resident size
// comes from /proc/self/statm, as in gcb.h.
//
// The sampler is a goroutine: unlike gcb.h's sampler thread it takes its turn
// on a P, and the collector stops it with the rest. Its own allocations (the
// growing sample slices) are a few hundred KiB at most.
package gcb

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SampleEvery is gcb.h's GCB_SAMPLE_MS.
const SampleEvery = 5 * time.Millisecond

// ringReadAt: read PauseNs when this many cycles have ended since the last
// read (the ring holds 256).
const ringReadAt = 128

const (
	mCycles   = "/gc/cycles/total:gc-cycles"
	mHeap     = "/memory/classes/heap/objects:bytes"
	mGoal     = "/gc/heap/goal:bytes"
	mObjects  = "/gc/heap/allocs:objects"
	mBytes    = "/gc/heap/allocs:bytes"
	mPauseHst = "/gc/pauses:seconds"
)

// Run is one benchmark run: Init starts it, Done ends it.
type Run struct {
	prog, mode string
	demo       bool
	t0         time.Time

	stop, stopped chan struct{}
	statm         *os.File

	// the sampler's; Done reads them after the sampler has stopped
	tick      []metrics.Sample // cycles, heap objects bytes, heap goal
	ms        runtime.MemStats
	seen      uint64   // cycles whose PauseNs entry was taken
	samples   []uint64 // triples: ms since t0, RSS KiB, heap KiB
	pauses    []uint64 // ns, one per cycle (see the package comment)
	lost      uint64
	peakHeap  uint64
	peakGoal  uint64
	cycles0   uint64
	start     []metrics.Sample // allocs, pause histogram at Init
	gogc      int
	pageBytes uint64
}

// Die is gcb_die: a message on stderr, exit status 1.
func Die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "gcb: "+format+"\n", a...)
	os.Exit(1)
}

// Atoi is C's atoi: leading blanks, a sign, the digits that follow; 0 when
// there are none. The C programs parse their numbers with it.
func Atoi(s string) int {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		return -n
	}
	return n
}

func endSamples() []metrics.Sample {
	return []metrics.Sample{{Name: mObjects}, {Name: mBytes}, {Name: mPauseHst}}
}

// Init is gcb_init: check the mode (Go has one: conc, its concurrent
// collector; "" means it), start the clock and the sampler.
func Init(prog, mode string, demo bool) *Run {
	if mode == "" {
		mode = "conc"
	}
	if mode != "conc" {
		Die("%s: Go has one mode, conc (not '%s')", prog, mode)
	}
	r := &Run{prog: prog, mode: mode, demo: demo, t0: time.Now(),
		stop: make(chan struct{}), stopped: make(chan struct{}),
		pageBytes: uint64(os.Getpagesize())}
	// the GOGC in force (the environment's, else 100): set it to read it back
	r.gogc = debug.SetGCPercent(100)
	debug.SetGCPercent(r.gogc)
	r.tick = []metrics.Sample{{Name: mCycles}, {Name: mHeap}, {Name: mGoal}}
	metrics.Read(r.tick)
	r.cycles0 = r.tick[0].Value.Uint64()
	r.seen = r.cycles0
	r.start = endSamples()
	metrics.Read(r.start)
	r.statm, _ = os.Open("/proc/self/statm") // nil: RSS samples read 0
	go r.sampler()
	return r
}

func (r *Run) rssKiB() uint64 {
	if r.statm == nil {
		return 0
	}
	var buf [128]byte
	n, _ := r.statm.ReadAt(buf[:], 0) // pread: io.EOF with the data is fine
	f := strings.Fields(string(buf[:n]))
	if len(f) < 2 {
		return 0
	}
	resident, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return resident * r.pageBytes / 1024
}

// takePauses reads MemStats (a stop of the world) and takes the PauseNs
// entries of the cycles that ended since the last call.
func (r *Run) takePauses() {
	runtime.ReadMemStats(&r.ms)
	n := uint64(r.ms.NumGC)
	k := r.seen
	if n-k > 256 {
		r.lost += n - k - 256
		k = n - 256
	}
	for ; k < n; k++ {
		r.pauses = append(r.pauses, r.ms.PauseNs[k%256])
	}
	r.seen = k
}

func (r *Run) sample() {
	metrics.Read(r.tick)
	if r.tick[0].Value.Uint64()-r.seen >= ringReadAt {
		r.takePauses()
	}
	heap := r.tick[1].Value.Uint64()
	if heap > r.peakHeap {
		r.peakHeap = heap
	}
	if g := r.tick[2].Value.Uint64(); g > r.peakGoal {
		r.peakGoal = g
	}
	r.samples = append(r.samples, uint64(time.Since(r.t0)/time.Millisecond), r.rssKiB(), heap/1024)
}

func (r *Run) sampler() {
	defer close(r.stopped)
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	for {
		r.sample()
		select {
		case <-r.stop:
			r.sample()
			return
		case <-t.C:
		}
	}
}

// stw: the stop-the-world phases since Init, from /gc/pauses:seconds: how
// many, and the upper edge (ns) of the bucket of the longest.
func (r *Run) stw(end []metrics.Sample) (count uint64, maxNs float64) {
	if end[2].Value.Kind() != metrics.KindFloat64Histogram || r.start[2].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, math.NaN()
	}
	h0, h1 := r.start[2].Value.Float64Histogram(), end[2].Value.Float64Histogram()
	maxNs = math.NaN()
	for i := range h1.Counts {
		d := h1.Counts[i]
		if i < len(h0.Counts) {
			d -= h0.Counts[i]
		}
		if d == 0 {
			continue
		}
		count += d
		edge := h1.Buckets[i+1]
		if math.IsInf(edge, 1) {
			edge = h1.Buckets[i]
		}
		maxNs = edge * 1e9
	}
	return count, maxNs
}

func human(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", b/1024)
}

// demoPrint is gcb.h's --demo account, in Go's terms.
func (r *Run) demoPrint(wall float64, cycles, objects, bytes, phases, liveBytes uint64) {
	var peakRSS uint64
	for i := 1; i < len(r.samples); i += 3 {
		if r.samples[i] > peakRSS {
			peakRSS = r.samples[i]
		}
	}
	v := append([]uint64(nil), r.pauses...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	fmt.Printf("\nWhat the garbage collector (Go %s, GOGC=%d) did:\n\n", runtime.Version(), r.gogc)
	fmt.Printf("  The program ran for %.2f seconds and allocated %d objects, %s in all.\n",
		wall, objects, human(float64(bytes)))
	fmt.Printf("  It never freed one: the collector found the ones no longer reachable\n"+
		"  and reused their memory, in %d collection cycles.\n", cycles)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 + float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
		fmt.Printf("  Its threads, the collector's own included, used %.2f s of CPU time.\n", cpu)
	}
	if n := len(v); n > 0 {
		var sum uint64
		for _, x := range v {
			sum += x
		}
		fmt.Printf("\n  A pause is a moment when the collector stops every goroutine of the\n"+
			"  program at once. Go stops them %d times in all, about twice a cycle,\n"+
			"  and reports each cycle's stops as one sum: the longest sum %.1f\n"+
			"  microseconds, a typical one (the median) %.1f microseconds, %.3f ms in all.\n",
			phases, float64(v[n-1])/1e3, float64(v[n/2])/1e3, float64(sum)/1e6)
		fmt.Printf("  The rest of the collector's work -- finding what is still reachable,\n" +
			"  freeing the rest -- ran alongside the program, not in the pauses.\n")
	}
	fmt.Printf("\n  The heap (memory in objects) peaked at %s; the program keeps %s\n"+
		"  to the end (its biggest temporary tree is live only while it is built).\n"+
		"  Each cycle aims to end before the heap reaches its goal, about twice\n"+
		"  what the last one found live (GOGC=100); the goal peaked at %s. The\n"+
		"  process's resident memory peaked at %s.\n",
		human(float64(r.peakHeap)), human(float64(liveBytes)), human(float64(r.peakGoal)),
		human(float64(peakRSS)*1024))
	if r.lost > 0 {
		fmt.Printf("  (%d pauses went unrecorded.)\n", r.lost)
	}
}

// Done is gcb_done: stop the clock and the sampler, write the results
// (GCB_OUT), print the last line (or the --demo account). check: "ok" or
// what went wrong. liveBytes: what the program keeps live all along, for
// --demo. Returns the exit status: 0, or 1 when the check failed.
func (r *Run) Done(check string, liveBytes uint64) int {
	wall := time.Since(r.t0).Seconds()
	close(r.stop)
	<-r.stopped
	r.takePauses()
	cycles := uint64(r.ms.NumGC) - r.cycles0
	end := endSamples()
	metrics.Read(end)
	objects := end[0].Value.Uint64() - r.start[0].Value.Uint64()
	bytes := end[1].Value.Uint64() - r.start[1].Value.Uint64()
	phases, stwMax := r.stw(end)

	if out := os.Getenv("GCB_OUT"); out != "" {
		var b strings.Builder
		// markers -1: Go's background mark workers take a quarter of
		// GOMAXPROCS (gcBackgroundUtilization), like wbgc's mark_workers = -1
		fmt.Fprintf(&b, "backend go\nmode %s\nwall_s %.6f\ncycles %d\nlost %d\nmarkers -1\n"+
			"objects %d\nbytes %d\ntotal_alloc %d\npeak_heap %d\n",
			r.mode, wall, cycles, r.lost, objects, bytes, bytes, r.peakHeap)
		fmt.Fprintf(&b, "version %s\ngogc %d\ngomaxprocs %d\nstw_phases %d\n",
			runtime.Version(), r.gogc, runtime.GOMAXPROCS(0), phases)
		if !math.IsNaN(stwMax) {
			fmt.Fprintf(&b, "stw_max_ns %.0f\n", stwMax)
		}
		fmt.Fprintf(&b, "check %s\n", check)
		for _, p := range r.pauses {
			fmt.Fprintf(&b, "p %d\n", p)
		}
		for i := 0; i+2 < len(r.samples); i += 3 {
			fmt.Fprintf(&b, "s %d %d %d\n", r.samples[i], r.samples[i+1], r.samples[i+2])
		}
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			Die("cannot write %s: %v", out, err)
		}
	}
	if r.demo {
		r.demoPrint(wall, cycles, objects, bytes, phases, liveBytes)
	} else {
		fmt.Printf("%s go/%s: %.3f s, %d cycles, %d pauses, check %s\n", r.prog, r.mode, wall, cycles,
			len(r.pauses), check)
	}
	if r.statm != nil {
		r.statm.Close()
	}
	if check != "ok" {
		fmt.Fprintf(os.Stderr, "%s: CHECK FAILED: %s\n", r.prog, check)
		return 1
	}
	return 0
}
