; the weak symbol table: interned symbols that nothing references are
; collected, and their entries unlinked lazily; a symbol still referenced
; keeps its identity (eq?); symbols with a global value or a special-form
; id are held strongly. Counts vary with what the conservative stack scan
; happens to keep, so they are printed as comparisons with some slack; the
; 20000 symbols are held by a spawned thread, whose stack (and any stale
; word on it that could keep part of their list) is gone after the join.
(define s0 (gc-stats))        ; kept: its keys stay interned for every later call
(define (field s k) (cdr (assq k s)))
(define keep (string->symbol "keep-me"))
(define keep-list (list (string->symbol "kept-in-a-list")))
(define (tmp-name i) (string-append "tmp-" (number->string i)))
(define base (field (gc-stats) 'symbols-live))
(define (intern-hold-drop k)   ; -> (live over base, eq?, weak-cleared), all while held
  (let* ((syms (map (lambda (i) (string->symbol (tmp-name i))) (iota k)))
         (s (gc-stats)))
    (list (- (field s 'symbols-live) base)
          (eq? (list-ref syms 1234) (string->symbol "tmp-1234"))
          (field s 'weak-cleared))))
(define r1 (join (spawn (lambda () (intern-hold-drop 20000)))))
(println "20000 interned, alive: " (>= (car r1) 20000))
(println "same name, same symbol: " (cadr r1))
(gc) (gc)
(define s2 (gc-stats))
(println "dropped and collected: " (< (- (field s2 'symbols-live) base) 100)
         ", handles cleared: " (>= (- (field s2 'weak-cleared) (caddr r1)) 19900))
; entries are unlinked lazily: most dead ones are still in the table
(println "dead entries still linked: " (> (- (field s2 'symbols) (field s2 'symbols-live)) 19000))
(println "keep-me survives, eq?: " (eq? keep (string->symbol "keep-me"))
         " " (eq? (car keep-list) (string->symbol "kept-in-a-list")))
(println "a dead name interns afresh: " (string->symbol "tmp-5") " "
         (eq? (string->symbol "tmp-5") (string->symbol "tmp-5")))
; symbols that only a global binding or a special-form id holds (the forms
; that named them are gone) are still there
(define weak-test-global 42)
(gc) (gc)
(println "a global survives: " weak-test-global)
(println "special forms survive: " (unless #f 'unless-ok) " " (letrec* ((a 1) (b (+ a 1))) b)
         " " (do ((i 0 (+ i 1))) ((= i 3) 'do-ok)))
; ten rounds of 5000 fresh symbols, each dropped: the table unlinks the dead
; entries (lookups, and a pass before it would grow) instead of growing
(define (round r)
  (let loop ((i 0))
    (when (< i 5000)
      (string->symbol (string-append "r" (number->string r) "-" (number->string i)))
      (loop (+ i 1))))
  (gc))
(for-each round (iota 10))
(define s3 (gc-stats))
(println "buckets did not grow: " (= (field s3 'symbol-buckets) (field s2 'symbol-buckets))
         ", collected: " (< (- (field s3 'symbols-live) base) 100)
         ", dead entries unlinked: " (>= (- (field s3 'symbols-dropped) (field s2 'symbols-dropped)) 40000))
(println "keep-me still eq?: " (eq? keep (string->symbol "keep-me")))
; four threads intern the same names at about the same time (name i/4,
; new ones all along) and junk they drop, while cycles run: every symbol
; any of them holds is the one the table gives now
(define (intern-many k)
  (let loop ((i 0) (acc '()))
    (if (= i 4000) acc
        (begin
          (string->symbol (string-append "junk-" (number->string k) "-" (number->string i)))
          (loop (+ i 1) (cons (string->symbol (string-append "shared-" (number->string (quotient i 4)))) acc))))))
(define lists (map join (map (lambda (k) (spawn (lambda () (intern-many k)))) (iota 4))))
(gc)
(println "threads agree: "
         (every (lambda (l) (every (lambda (s) (eq? s (string->symbol (symbol->string s)))) l)) lists)
         " " (length (apply append lists)))
