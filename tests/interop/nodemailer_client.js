// nodemailer as a client for the interop tests (driven by test_server_peers.py).
//
//   node nodemailer_client.js PORT FROM TO MESSAGE-FILE [CAFILE [USER PASSWORD [METHOD]]]
//
// Sends the message file as it is (raw) to 127.0.0.1:PORT, greeting as client.example.
// With CAFILE it requires STARTTLS and verifies the server's certificate (for
// "localhost") against it; without, it stays in clear. With USER and PASSWORD it
// authenticates (with METHOD, or the one nodemailer picks among those offered).
// TO may list several recipients separated by commas. The SMTP dialogue is logged on
// stderr. Prints the server's final reply and exits 0 once the message was accepted;
// otherwise prints the error and exits 1. nodemailer comes from $PEERS/node (NODE_PATH).
"use strict";

const fs = require("fs");
const nodemailer = require("nodemailer");

const [port, from, to, file, cafile, user, password, method] = process.argv.slice(2);
if (!file) {
    console.error("usage: nodemailer_client.js PORT FROM TO FILE [CAFILE [USER PASSWORD [METHOD]]]");
    process.exit(2);
}

const options = {
    host: "127.0.0.1",
    port: Number(port),
    secure: false,
    name: "client.example",
    connectionTimeout: 20000,
    greetingTimeout: 20000,
    socketTimeout: 20000,
    logger: {
        info: () => {},
        debug: (entry, message) => console.error(message),
        error: (entry, message) => console.error(message),
        warn: (entry, message) => console.error(message),
        trace: () => {},
        fatal: (entry, message) => console.error(message),
        level: () => {},
    },
    debug: true,
};
if (cafile) {
    options.requireTLS = true;
    options.tls = { ca: [fs.readFileSync(cafile)], servername: "localhost" };
} else {
    options.ignoreTLS = true;
}
if (user) {
    options.auth = { user, pass: password };
    if (method) {
        options.authMethod = method;
    }
}

const transport = nodemailer.createTransport(options);
transport.sendMail(
    { envelope: { from, to: to.split(",") }, raw: fs.readFileSync(file) },
    (error, info) => {
        if (error) {
            console.log(`nodemailer_client: ${error.message}`);
            process.exit(1);
        }
        console.log(info.response);
        process.exit(0);
    },
);
