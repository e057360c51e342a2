'use strict';
// unleash-server 6.x for the rehearsal sandbox, started by sandbox/launcher/unleash.py when
// SANDBOX_FLAG_BACKEND=unleash. Every setting comes from the environment the launcher builds
// (secrets are generated per `up` and kept only in the sandbox's state.json):
//
//   SANDBOX_UNLEASH_PORT                     port on 127.0.0.1
//   SANDBOX_UNLEASH_DB_HOST / _DB_PORT / _DB_NAME / _DB_USER / _DB_PASSWORD
//                                            the sandbox PostgreSQL and Unleash's own database
//   SANDBOX_UNLEASH_ADMIN_TOKEN              "*:*.<secret>"  (admin API: the flag store)
//   SANDBOX_UNLEASH_CLIENT_TOKEN             "<project>:<environment>.<secret>" (SDKs in the apps)
//   SANDBOX_UNLEASH_ADMIN_PASSWORD           UI login "admin" (for a human looking at the flags)
//   SANDBOX_UNLEASH_SESSION_SECRET           signs UI sessions
//
// The launcher passes `--state-dir <dir>` only so that the process can be recognised as this
// sandbox's own (it stops processes by PID and checks their command line names the state dir).

// This machine (and CI) reaches no host but package registries: no version check, no telemetry.
// Set before unleash-server reads its configuration (`telemetry: false` alone is ignored by 6.x).
process.env.SEND_TELEMETRY = 'false';
process.env.CHECK_VERSION = 'false';

const unleash = require('unleash-server');

function setting(name) {
    const value = process.env[name];
    if (!value) {
        console.error(`unleash sandbox: environment variable ${name} is not set (start it through python -m sandbox.launcher up)`);
        process.exit(2);
    }
    return value;
}

function port(name) {
    const value = Number.parseInt(setting(name), 10);
    if (!Number.isInteger(value) || value < 1024 || value > 65535) {
        console.error(`unleash sandbox: ${name}=${process.env[name]} is not a port in 1024-65535`);
        process.exit(2);
    }
    return value;
}

// "<project>:<environment>.<secret>": Unleash 6 derives a token's scope from its secret's prefix.
function tokenScope(name, secret) {
    const match = /^([^:]+):([^.]+)\.(.+)$/.exec(secret);
    if (!match) {
        console.error(`unleash sandbox: ${name} must look like <project>:<environment>.<secret>`);
        process.exit(2);
    }
    return { project: match[1], environment: match[2] };
}

const adminToken = setting('SANDBOX_UNLEASH_ADMIN_TOKEN');
const clientToken = setting('SANDBOX_UNLEASH_CLIENT_TOKEN');
const clientScope = tokenScope('SANDBOX_UNLEASH_CLIENT_TOKEN', clientToken);
if (tokenScope('SANDBOX_UNLEASH_ADMIN_TOKEN', adminToken).project !== '*') {
    console.error('unleash sandbox: SANDBOX_UNLEASH_ADMIN_TOKEN must start with "*:*." (admin tokens span all projects)');
    process.exit(2);
}

const options = {
    db: {
        host: setting('SANDBOX_UNLEASH_DB_HOST'),
        port: port('SANDBOX_UNLEASH_DB_PORT'),
        database: setting('SANDBOX_UNLEASH_DB_NAME'),
        user: setting('SANDBOX_UNLEASH_DB_USER'),
        password: setting('SANDBOX_UNLEASH_DB_PASSWORD'),
        ssl: false, // the sandbox PostgreSQL listens on loopback without TLS
        pool: { min: 0, max: 4 },
    },
    server: {
        host: '127.0.0.1',
        port: port('SANDBOX_UNLEASH_PORT'),
        secret: setting('SANDBOX_UNLEASH_SESSION_SECRET'),
        gracefulShutdownEnable: true, // SIGTERM from the launcher: stop serving, close the pool, exit
    },
    authentication: {
        type: 'open-source',
        enableApiToken: true,
        createAdminUser: true,
        initialAdminUser: { username: 'admin', password: setting('SANDBOX_UNLEASH_ADMIN_PASSWORD') },
        initApiTokens: [
            { tokenName: 'cutover-admin', type: 'admin', project: '*', environment: '*', secret: adminToken },
            {
                tokenName: 'cutover-apps', type: 'client',
                project: clientScope.project, environment: clientScope.environment, secret: clientToken,
            },
        ],
    },
    versionCheck: { enable: false },
    telemetry: false,
    logLevel: 'warn', // info would print the UI admin password into the log file
};

unleash.start(options).then(
    (instance) => {
        console.log(`unleash sandbox: unleash-server ${instance.version || ''} listening on ` +
            `http://127.0.0.1:${options.server.port} (project/environment of the client token: ` +
            `${clientScope.project}/${clientScope.environment})`);
    },
    (error) => {
        console.error('unleash sandbox: unleash-server failed to start:', error);
        process.exit(1);
    },
);
