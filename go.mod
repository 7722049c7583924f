module kumofs

go 1.26
