package datasets

// metaMathPreamble is the start of the Alpaca-style prompt MetaMath trains
// and evaluates with, up to the query.
const metaMathPreamble = "Below is an instruction that describes a task. " +
	"Write a response that appropriately completes the request.\n\n### Instruction:\n"

// MetaMathPrompt renders a query with the MetaMath training template:
// "Below is an instruction that describes a task. Write a response that
// appropriately completes the request.\n\n### Instruction:\n{query}\n\n###
// Response:". The response follows it directly.
func MetaMathPrompt(query string) string {
	return metaMathPreamble + query + "\n\n### Response:"
}
