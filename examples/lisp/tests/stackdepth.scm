; deep (non-tail) recursion works to about a million frames, then a clean error
(define (count n) (if (= n 0) 0 (+ 1 (count (- n 1)))))
(println (count 100000))
(define (build n) (if (= n 0) '() (cons n (build (- n 1)))))
(define big (build 300000))
(println (length big) " " (car big) " " (apply + big))
(define (sum l) (if (null? l) 0 (+ (car l) (sum (cdr l)))))
(println (sum big))
(println (catch-error (lambda () (count 2000000))))
; without TCO this loop would need two million frames too
(define (tloop n) (if (= n 0) 'ok (tloop (- n 1))))
(println (tloop 2000000))
