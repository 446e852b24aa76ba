// nodemailer's smtp-server as a peer for the interop tests (started by conftest.py).
//
//   node smtp_server_peer.js PORT CERT KEY MAILDIR
//
// Listens on 127.0.0.1:PORT with STARTTLS (CERT/KEY), AUTH PLAIN/LOGIN over TLS for
// test/secret, SIZE 10 MiB, refuses refused@example.test with 550, and stores each
// message as one file in MAILDIR/new (written to MAILDIR/tmp first, then renamed).
// smtp-server and nodemailer come from $PEERS/node (NODE_PATH). Stops on SIGTERM.
"use strict";

const fs = require("fs");
const path = require("path");
const { SMTPServer } = require("smtp-server");

const [port, certFile, keyFile, maildir] = process.argv.slice(2);
if (!maildir) {
    console.error("usage: smtp_server_peer.js PORT CERT KEY MAILDIR");
    process.exit(2);
}
for (const sub of ["tmp", "new", "cur"]) {
    fs.mkdirSync(path.join(maildir, sub), { recursive: true });
}

let counter = 0;

function refuse(code, text) {
    const error = new Error(text);
    error.responseCode = code;
    return error;
}

const server = new SMTPServer({
    name: "smtp-server.example.test",
    secure: false,
    key: fs.readFileSync(keyFile),
    cert: fs.readFileSync(certFile),
    size: 10 * 1024 * 1024,
    authMethods: ["PLAIN", "LOGIN"],
    // AUTH is advertised in clear too, but answered 538 until STARTTLS (the default).
    allowInsecureAuth: false,
    authOptional: true,
    logger: false,
    closeTimeout: 2000,
    onAuth(auth, session, callback) {
        if (auth.username === "test" && auth.password === "secret") {
            callback(null, { user: auth.username });
        } else {
            callback(refuse(535, "5.7.8 Authentication credentials invalid"));
        }
    },
    onRcptTo(address, session, callback) {
        if (address.address.toLowerCase() === "refused@example.test") {
            callback(refuse(550, "5.1.1 refused by the interop configuration"));
        } else {
            callback();
        }
    },
    onData(stream, session, callback) {
        const chunks = [];
        stream.on("data", (chunk) => chunks.push(chunk));
        stream.on("end", () => {
            if (stream.sizeExceeded) {
                callback(refuse(552, "5.3.4 message too big"));
                return;
            }
            counter += 1;
            const name = `${Date.now()}.${process.pid}_${counter}.smtp-server`;
            const temporary = path.join(maildir, "tmp", name);
            fs.writeFileSync(temporary, Buffer.concat(chunks));
            fs.renameSync(temporary, path.join(maildir, "new", name));
            callback(null, `2.0.0 stored as ${name}`);
        });
    },
});

server.on("error", (error) => console.error("smtp-server error:", error.message));
server.listen(Number(port), "127.0.0.1", () => console.log(`ready on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
