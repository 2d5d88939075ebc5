module wbgcbench

go 1.19
