(println "before")
(println (+ 1 2)
(println "never")
