// The mini program's entry. Everything the page does lives in lib/, which
// takes `wx` as a parameter so node can test it (test/).
App({});
