; a large live set (a 20000-entry table of lists, rewritten in place with
; set-car!/vector-set!) while garbage churns around it; checksums verify
; that nothing live is lost or corrupted.
(define n 20000)
(define table (make-vector n '()))
(define (entry i) (list i (* i 2) (number->string i) (vector i (- i))))
(let loop ((i 0)) (when (< i n) (vector-set! table i (entry i)) (loop (+ i 1))))
(define (valid? i e)
  (and (= (car e) i) (= (cadr e) (* 2 i)) (string=? (caddr e) (number->string i))
       (= (vector-ref (cadddr e) 0) i) (= (vector-ref (cadddr e) 1) (- i))))
(define (cadddr x) (car (cdddr x)))
(define (garbage k) (let loop ((j 0) (acc '())) (if (= j k) (length acc) (loop (+ j 1) (cons (make-vector 4 j) acc)))))
(define (do-round r)
  (let loop ((i 0))
    (when (< i n)
      (garbage 8)
      (when (= (modulo i 7) r)
        (let ((e (vector-ref table i)))
          (set-car! (cddr e) (number->string i))              ; replace a field
          (vector-set! table i (list (car e) (cadr e) (caddr e) (cadddr e)))))  ; replace the entry
      (loop (+ i 1)))))
(let rounds ((r 0)) (when (< r 4) (do-round r) (rounds (+ r 1))))
(define bad (let loop ((i 0) (b 0)) (if (= i n) b (loop (+ i 1) (if (valid? i (vector-ref table i)) b (+ b 1))))))
(println "entries: " n ", corrupt: " bad)
(println "checksum: " (let loop ((i 0) (s 0)) (if (= i n) s (loop (+ i 1) (+ s (cadr (vector-ref table i)))))))
(println "cycles ran: " (> (cdr (assq 'cycles (gc-stats))) 2))
