package datasets

// MetaMathPrompt renders a MetaMathQA query in the Alpaca-style template the
// MetaMath authors train and evaluate with:
//
//	Below is an instruction that describes a task. Write a response that appropriately completes the request.
//
//	### Instruction:
//	{query}
//
//	### Response:
//
// The prompt ends with "### Response:"; the response follows directly, with
// no separator added (MetaMath's training code concatenates the two).
func MetaMathPrompt(query string) string {
	return "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n" + query + "\n\n### Response:"
}
