; file ports: close-port closes a port's file; a port the program drops
; without closing it is closed by its finalizer once a cycle has found it
; unreachable. Finalizers run at safe points: after each top-level form,
; and in (gc) once its cycle is done, so each count below is taken in the
; form that calls (gc), and shows (gc)'s own run. Ports dropped
; below are dropped by a spawned thread, joined before the count: its stack
; is gone, so no stale word on it can keep one alive, and the counts are exact.
(define dir (or (getenv "LISP_TEST_DIR") "/tmp"))
(define path (string-append dir "/wbgc-lisp-ports.txt"))
(define (stat k) (cdr (assq k (gc-stats))))
(define (in-thread thunk) (join (spawn thunk)))
(define (error-head thunk)   ; an error's message, without the path in it
  (let* ((m (catch-error thunk)) (i (or (string-index m ": #<") (string-index m ": \""))))
    (if i (substring m 0 i) m)))

; write, close (twice: the second does nothing), read back
(define out (open-output-file path))
(println (port? out) " " (port? "no") " " (length (list out)))
(write-string "line one\n" out)
(write-string "line two\n" out)
(close-port out)
(close-port out)
(define in (open-input-file path))
(define l1 (read-line in))
(define l2 (read-line in))
(println l1 " | " l2 " | " (eof-object? (read-line in)) " " (eof-object? l2))
(close-port in)
(println (error-head (lambda () (read-line in))))
(println (error-head (lambda () (open-input-file (string-append dir "/no-such-file")))))
(println (error-head (lambda () (read-line out))))

; a port still referenced is not closed by a cycle
(define held (open-input-file path))
(gc) (gc)
(println "held port still reads: " (read-line held))

; an output port dropped unclosed: its line is still in the C library's
; buffer, and reaches the file when the finalizer closes the port
(define f0 (stat 'ports-finalized))
(in-thread (lambda () (write-string "written, never closed\n" (open-output-file path)) 'dropped))
(println "closed by its finalizer: " (begin (gc) (- (stat 'ports-finalized) f0)))
(define in2 (open-input-file path))
(println "the file holds: " (read-line in2))
(close-port in2)

; the other safe points: a cycle alone ((gc #f)) leaves the finalizer
; queued; the end of the top-level form runs it, and so does an open
(define (drop-one) (in-thread (lambda () (open-input-file path) 'dropped)))
(define f3 (stat 'ports-finalized))
(println "after (gc #f), queued, not run: " (begin (drop-one) (gc #f) (- (stat 'ports-finalized) f3)))
(println "after the form: " (- (stat 'ports-finalized) f3))
(println "an open runs it: "
         (begin (drop-one) (gc #f) (close-port (open-input-file path)) (- (stat 'ports-finalized) f3)))
(gc)   ; and the port that open made is finalized here, not below

; 1000 ports closed with close-port, then dropped: their finalizers run and
; close nothing (no file is closed twice)
(define (open-close k) (let loop ((i 0)) (when (< i k) (close-port (open-input-file path)) (loop (+ i 1)))) k)
(define c1 (stat 'ports-closed))
(define f1 (stat 'ports-finalized))
(define r1 (stat 'finalizers-run))
(in-thread (lambda () (open-close 1000)))
(println "closed by close-port: " (begin (gc) (- (stat 'ports-closed) c1))
         ", by finalizers: " (- (stat 'ports-finalized) f1)
         ", finalizers run: " (- (stat 'finalizers-run) r1))

; 2000 ports dropped open, with the descriptor limit lowered to 64: opening
; runs the finalizers of the ports already found dropped, and when the
; process is out of descriptors, a cycle first; every port is closed once
(define old-limit (set-fd-limit! 64))
(define (open-drop k) (let loop ((i 0)) (when (< i k) (open-input-file path) (loop (+ i 1)))) k)
(define o2 (stat 'ports-opened))
(define f2 (stat 'ports-finalized))
(println "opened and dropped: " (in-thread (lambda () (open-drop 2000))) " with 64 descriptors")
(println "closed by finalizers: " (begin (gc) (- (stat 'ports-finalized) f2)) " of " (- (stat 'ports-opened) o2))
(println "held port still reads: " (read-line held))
(close-port held)
(delete-file path)
(println (error-head (lambda () (open-input-file path))))
