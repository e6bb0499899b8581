// Drives the unmodified npm package `lightning-backends` (its "lndhub" backend) for
// tests/e2e/test_lndhub_client.py: one JSON command per stdin line, one JSON answer per stdout line.
//
//   env LNDHUB_SECRET        lndhub://login:password@http://127.0.0.1:PORT/lndhub
//   env LNDHUB_CONTENT_TYPE  json | form   (the library's requestContentType option)
//   env LIGHTNING_BACKENDS   folder holding node_modules/lightning-backends
//
// accessTokenMaxAge 0 makes the library re-authorise before every call, which it does with its
// refresh token (POST /auth?type=refresh_token) after the first login (POST /auth?type=auth).
'use strict';
const path = require('path');
const readline = require('readline');
const { prepareBackend } = require(path.join(process.env.LIGHTNING_BACKENDS, 'node_modules', 'lightning-backends'));

const backend = prepareBackend('lndhub', {
	secret: process.env.LNDHUB_SECRET,
	requestContentType: process.env.LNDHUB_CONTENT_TYPE || 'json',
	accessTokenMaxAge: 0,
});

const operations = {
	addInvoice: (c) => backend.addInvoice(c.msat, { description: c.description }),
	getInvoiceStatus: (c) => backend.getInvoiceStatus(c.paymentHash),
	getBalance: () => backend.getBalance(),
	payInvoice: (c) => backend.payInvoice(c.invoice),
	// Routes the library has no method for, through its own authorised request.
	request: (c) => backend.tryAuthorizedRequest(c.method, c.uri, c.data),
};

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
	queue = queue.then(async () => {
		let answer;
		try {
			const command = JSON.parse(line);
			answer = { ok: true, result: await operations[command.op](command) };
		} catch (error) {
			answer = { ok: false, error: String(error && error.message || error) };
		}
		process.stdout.write(JSON.stringify(answer) + '\n');
	});
});
lines.on('close', () => queue.then(() => process.exit(0)));
