; proper tail calls: these loops run in constant C stack. The interpreter's
; stack holds about a million non-tail frames, so 1,500,000 iterations would
; overflow it without TCO.
(define N 1500000)
(define (loop n acc) (if (= n 0) acc (loop (- n 1) (+ acc 1))))
(println "define loop: " (loop N 0))
(println "named let: " (let lp ((i 0)) (if (< i N) (lp (+ i 1)) i)))
(define (my-even? n) (if (= n 0) #t (my-odd? (- n 1))))
(define (my-odd? n) (if (= n 0) #f (my-even? (- n 1))))
(println "mutual: " (my-even? N))
(define (cond-loop n) (cond ((= n 0) 'cond-done) (else (cond-loop (- n 1)))))
(println (cond-loop N))
(define (and-loop n) (and #t (if (= n 0) 'and-done (and-loop (- n 1)))))
(println (and-loop N))
(define (or-loop n) (or #f (if (= n 0) 'or-done (or-loop (- n 1)))))
(println (or-loop N))
(define (begin-loop n) (begin 1 (when #t (if (= n 0) 'when-done (begin-loop (- n 1))))))
(println (begin-loop N))
(println "do: " (do ((i 0 (+ i 1)) (s 0 (+ s i))) ((= i 100000) s)))
; constant space: the heap does not grow with the iteration count either
(define stats (gc-stats))
(println "heap bounded: " (< (cdr (assq 'heap-alloc stats)) (* 64 1024 1024)))
(println "collected: " (> (cdr (assq 'cycles stats)) 0))
