module slibench

go 1.19

require sli v0.0.0

replace sli => ../sli
