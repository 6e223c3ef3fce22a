package memory

// SetLeafWarmMin lets the external tests run every batch through
// rank.SubmitMany, whatever the board's size; it returns the undo.
func SetLeafWarmMin(n int) func() {
	old := leafWarmMin
	leafWarmMin = n
	return func() { leafWarmMin = old }
}
