package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "rewind: not built yet")
	os.Exit(1)
}
