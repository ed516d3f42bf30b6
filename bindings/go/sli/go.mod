module sli

go 1.19
