export default rtt;
export const version: string;
export const registerTransport: (name: string, adapter: {
    open: (url: string, options: {
        readonly [name: string]: unknown;
        readonly reconnect: {
            minDelay: number;
            maxDelay: number;
            factor: number;
            jitter: number;
            maxAttempts: number | null;
            stableAfter: number;
            retryCodes: readonly number[];
            delays(random?: () => number): Generator<number, void, void>;
        } | null;
        readonly offlineQueueSize: number;
        readonly maxMessageSize: number;
        readonly connectTimeout: number;
        readonly resume: boolean;
    }, sink: {
        opened: () => void;
        message: (data: string | Uint8Array<ArrayBufferLike>) => void;
        closed: (reason: string, code?: number | null, text?: string | null) => void;
        failed: (error: unknown) => void;
    }) => {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    };
}) => void;
export const registerWebSocketTransport: (name: string) => void;
export const client: (transport: string, url: string | URL, options?: ConstructorParameters<{
    new (transport: string, url: string | URL, options?: {
        reconnect?: boolean | {
            minDelay: number;
            maxDelay: number;
            factor: number;
            jitter: number;
            maxAttempts: number | null;
            stableAfter: number;
            retryCodes: readonly number[];
            delays(random?: () => number): Generator<number, void, void>;
        } | object;
        offlineQueueSize?: number;
        maxMessageSize?: number;
        connectTimeout?: number;
        resume?: boolean;
    }): {
        transport: string;
        url: string;
        options: {
            readonly [name: string]: unknown;
            readonly reconnect: {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | null;
            readonly offlineQueueSize: number;
            readonly maxMessageSize: number;
            readonly connectTimeout: number;
            readonly resume: boolean;
        };
        _adapter: {
            open: (url: string, options: {
                readonly [name: string]: unknown;
                readonly reconnect: {
                    minDelay: number;
                    maxDelay: number;
                    factor: number;
                    jitter: number;
                    maxAttempts: number | null;
                    stableAfter: number;
                    retryCodes: readonly number[];
                    delays(random?: () => number): Generator<number, void, void>;
                } | null;
                readonly offlineQueueSize: number;
                readonly maxMessageSize: number;
                readonly connectTimeout: number;
                readonly resume: boolean;
            }, sink: {
                opened: () => void;
                message: (data: string | Uint8Array<ArrayBufferLike>) => void;
                closed: (reason: string, code?: number | null, text?: string | null) => void;
                failed: (error: unknown) => void;
            }) => {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            };
        };
        _state: string;
        _closeReason: string | null;
        _closeCode: number | null;
        _closeText: string | null;
        _conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        } | null;
        _cancel: ((error: {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        }) => void) | null;
        _delays: Iterator<number, void> | null;
        _attempts: number;
        _stable: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
        _queue: (string | Uint8Array<ArrayBufferLike>)[];
        _handlers: Map<string, Function[]>;
        _warnedUnhandled: boolean;
        _session: {
            id: string;
            token: string;
            nonce: string;
        } | null;
        _mode: string;
        _inCount: number;
        _sent: (string | Uint8Array<ArrayBufferLike>)[];
        _sentBase: number;
        _forgot: boolean;
        _acked: number;
        _ackBytes: number;
        _ackTimer: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
        _pendingLoss: string | null;
        _signalled: boolean;
        _resumed: boolean;
        _unconfirmed: (string | Uint8Array<ArrayBufferLike>)[];
        _closed: Promise<string>;
        _resolveClosed: (reason: string) => void;
        get state(): string;
        get closeReason(): string | null;
        get closeCode(): number | null;
        get closeText(): string | null;
        get unsent(): (string | Uint8Array<ArrayBuffer>)[];
        get socketId(): string | null;
        get resumed(): boolean;
        get unconfirmed(): (string | Uint8Array<ArrayBuffer>)[];
        on(event: string, handler: Function): /*elided*/ any;
        off(event: string, handler: Function): /*elided*/ any;
        connect(): Promise<void>;
        send(data: string | ArrayBuffer | ArrayBufferView): void;
        close(): void;
        waitClosed(): Promise<string>;
        _attempt(onOpen: (conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, answer?: {
            welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null;
            first?: string | Uint8Array<ArrayBufferLike>;
        }) => void, onFail: (error: {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        }) => void): void;
        _adopt(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, attempt: number, answer?: {
            welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null;
            first?: string | Uint8Array<ArrayBufferLike>;
        }): unknown;
        _write(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, message: string | Uint8Array<ArrayBufferLike>): void;
        _resume(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        } | null): void;
        _welcomeProblem(welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        }): string | null;
        _welcome(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        }): void;
        _dropSession(detail: string): void;
        _forgetSent(): void;
        _first(data: string | Uint8Array<ArrayBufferLike>): boolean;
        _control(letter: string, payload: string): void;
        _signal(detail: string): void;
        _count(message: string | Uint8Array<ArrayBufferLike>): void;
        _ack(): void;
        _broken(): void;
        _received(data: string | Uint8Array<ArrayBufferLike>): void;
        _lost(reason: string, code?: number | null, text?: string | null): void;
        _reconnect(delays: Iterator<number, void>, attempts: number): void;
        _stopAcks(): void;
        _finalise(reason: string): void;
        _emit(event: string, ...args: unknown[]): void;
        _listeners(event: string): Function[];
        _handlerFailed(event: string, error: unknown): void;
    };
}>[2]) => {
    transport: string;
    url: string;
    options: {
        readonly [name: string]: unknown;
        readonly reconnect: {
            minDelay: number;
            maxDelay: number;
            factor: number;
            jitter: number;
            maxAttempts: number | null;
            stableAfter: number;
            retryCodes: readonly number[];
            delays(random?: () => number): Generator<number, void, void>;
        } | null;
        readonly offlineQueueSize: number;
        readonly maxMessageSize: number;
        readonly connectTimeout: number;
        readonly resume: boolean;
    };
    _adapter: {
        open: (url: string, options: {
            readonly [name: string]: unknown;
            readonly reconnect: {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | null;
            readonly offlineQueueSize: number;
            readonly maxMessageSize: number;
            readonly connectTimeout: number;
            readonly resume: boolean;
        }, sink: {
            opened: () => void;
            message: (data: string | Uint8Array<ArrayBufferLike>) => void;
            closed: (reason: string, code?: number | null, text?: string | null) => void;
            failed: (error: unknown) => void;
        }) => {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        };
    };
    _state: string;
    _closeReason: string | null;
    _closeCode: number | null;
    _closeText: string | null;
    _conn: {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    } | null;
    _cancel: ((error: {
        cause: unknown;
        name: string;
        message: string;
        stack?: string;
    }) => void) | null;
    _delays: Iterator<number, void> | null;
    _attempts: number;
    _stable: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
    _queue: (string | Uint8Array<ArrayBufferLike>)[];
    _handlers: Map<string, Function[]>;
    _warnedUnhandled: boolean;
    _session: {
        id: string;
        token: string;
        nonce: string;
    } | null;
    _mode: string;
    _inCount: number;
    _sent: (string | Uint8Array<ArrayBufferLike>)[];
    _sentBase: number;
    _forgot: boolean;
    _acked: number;
    _ackBytes: number;
    _ackTimer: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
    _pendingLoss: string | null;
    _signalled: boolean;
    _resumed: boolean;
    _unconfirmed: (string | Uint8Array<ArrayBufferLike>)[];
    _closed: Promise<string>;
    _resolveClosed: (reason: string) => void;
    get state(): string;
    get closeReason(): string | null;
    get closeCode(): number | null;
    get closeText(): string | null;
    get unsent(): (string | Uint8Array<ArrayBuffer>)[];
    get socketId(): string | null;
    get resumed(): boolean;
    get unconfirmed(): (string | Uint8Array<ArrayBuffer>)[];
    on(event: string, handler: Function): /*elided*/ any;
    off(event: string, handler: Function): /*elided*/ any;
    connect(): Promise<void>;
    send(data: string | ArrayBuffer | ArrayBufferView): void;
    close(): void;
    waitClosed(): Promise<string>;
    _attempt(onOpen: (conn: {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    }, answer?: {
        welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        } | null;
        first?: string | Uint8Array<ArrayBufferLike>;
    }) => void, onFail: (error: {
        cause: unknown;
        name: string;
        message: string;
        stack?: string;
    }) => void): void;
    _adopt(conn: {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    }, attempt: number, answer?: {
        welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        } | null;
        first?: string | Uint8Array<ArrayBufferLike>;
    }): unknown;
    _write(conn: {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    }, message: string | Uint8Array<ArrayBufferLike>): void;
    _resume(conn: {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    }, welcome: {
        status: string;
        id: string;
        token: string;
        nonce: string;
        window: number;
        handled: number;
        received: number | null;
        why: string | null;
        loss: string | null;
    } | null): void;
    _welcomeProblem(welcome: {
        status: string;
        id: string;
        token: string;
        nonce: string;
        window: number;
        handled: number;
        received: number | null;
        why: string | null;
        loss: string | null;
    }): string | null;
    _welcome(conn: {
        send: (data: string | Uint8Array<ArrayBufferLike>) => void;
        close: (code: number, reasonText: string) => void;
    }, welcome: {
        status: string;
        id: string;
        token: string;
        nonce: string;
        window: number;
        handled: number;
        received: number | null;
        why: string | null;
        loss: string | null;
    }): void;
    _dropSession(detail: string): void;
    _forgetSent(): void;
    _first(data: string | Uint8Array<ArrayBufferLike>): boolean;
    _control(letter: string, payload: string): void;
    _signal(detail: string): void;
    _count(message: string | Uint8Array<ArrayBufferLike>): void;
    _ack(): void;
    _broken(): void;
    _received(data: string | Uint8Array<ArrayBufferLike>): void;
    _lost(reason: string, code?: number | null, text?: string | null): void;
    _reconnect(delays: Iterator<number, void>, attempts: number): void;
    _stopAcks(): void;
    _finalise(reason: string): void;
    _emit(event: string, ...args: unknown[]): void;
    _listeners(event: string): Function[];
    _handlerFailed(event: string, error: unknown): void;
};
export const Client: {
    new (transport: string, url: string | URL, options?: {
        reconnect?: boolean | {
            minDelay: number;
            maxDelay: number;
            factor: number;
            jitter: number;
            maxAttempts: number | null;
            stableAfter: number;
            retryCodes: readonly number[];
            delays(random?: () => number): Generator<number, void, void>;
        } | object;
        offlineQueueSize?: number;
        maxMessageSize?: number;
        connectTimeout?: number;
        resume?: boolean;
    }): {
        transport: string;
        url: string;
        options: {
            readonly [name: string]: unknown;
            readonly reconnect: {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | null;
            readonly offlineQueueSize: number;
            readonly maxMessageSize: number;
            readonly connectTimeout: number;
            readonly resume: boolean;
        };
        _adapter: {
            open: (url: string, options: {
                readonly [name: string]: unknown;
                readonly reconnect: {
                    minDelay: number;
                    maxDelay: number;
                    factor: number;
                    jitter: number;
                    maxAttempts: number | null;
                    stableAfter: number;
                    retryCodes: readonly number[];
                    delays(random?: () => number): Generator<number, void, void>;
                } | null;
                readonly offlineQueueSize: number;
                readonly maxMessageSize: number;
                readonly connectTimeout: number;
                readonly resume: boolean;
            }, sink: {
                opened: () => void;
                message: (data: string | Uint8Array<ArrayBufferLike>) => void;
                closed: (reason: string, code?: number | null, text?: string | null) => void;
                failed: (error: unknown) => void;
            }) => {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            };
        };
        _state: string;
        _closeReason: string | null;
        _closeCode: number | null;
        _closeText: string | null;
        _conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        } | null;
        _cancel: ((error: {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        }) => void) | null;
        _delays: Iterator<number, void> | null;
        _attempts: number;
        _stable: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
        _queue: (string | Uint8Array<ArrayBufferLike>)[];
        _handlers: Map<string, Function[]>;
        _warnedUnhandled: boolean;
        _session: {
            id: string;
            token: string;
            nonce: string;
        } | null;
        _mode: string;
        _inCount: number;
        _sent: (string | Uint8Array<ArrayBufferLike>)[];
        _sentBase: number;
        _forgot: boolean;
        _acked: number;
        _ackBytes: number;
        _ackTimer: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
        _pendingLoss: string | null;
        _signalled: boolean;
        _resumed: boolean;
        _unconfirmed: (string | Uint8Array<ArrayBufferLike>)[];
        _closed: Promise<string>;
        _resolveClosed: (reason: string) => void;
        get state(): string;
        get closeReason(): string | null;
        get closeCode(): number | null;
        get closeText(): string | null;
        get unsent(): (string | Uint8Array<ArrayBuffer>)[];
        get socketId(): string | null;
        get resumed(): boolean;
        get unconfirmed(): (string | Uint8Array<ArrayBuffer>)[];
        on(event: string, handler: Function): /*elided*/ any;
        off(event: string, handler: Function): /*elided*/ any;
        connect(): Promise<void>;
        send(data: string | ArrayBuffer | ArrayBufferView): void;
        close(): void;
        waitClosed(): Promise<string>;
        _attempt(onOpen: (conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, answer?: {
            welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null;
            first?: string | Uint8Array<ArrayBufferLike>;
        }) => void, onFail: (error: {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        }) => void): void;
        _adopt(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, attempt: number, answer?: {
            welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null;
            first?: string | Uint8Array<ArrayBufferLike>;
        }): unknown;
        _write(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, message: string | Uint8Array<ArrayBufferLike>): void;
        _resume(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        } | null): void;
        _welcomeProblem(welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        }): string | null;
        _welcome(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        }): void;
        _dropSession(detail: string): void;
        _forgetSent(): void;
        _first(data: string | Uint8Array<ArrayBufferLike>): boolean;
        _control(letter: string, payload: string): void;
        _signal(detail: string): void;
        _count(message: string | Uint8Array<ArrayBufferLike>): void;
        _ack(): void;
        _broken(): void;
        _received(data: string | Uint8Array<ArrayBufferLike>): void;
        _lost(reason: string, code?: number | null, text?: string | null): void;
        _reconnect(delays: Iterator<number, void>, attempts: number): void;
        _stopAcks(): void;
        _finalise(reason: string): void;
        _emit(event: string, ...args: unknown[]): void;
        _listeners(event: string): Function[];
        _handlerFailed(event: string, error: unknown): void;
    };
};
export const ReconnectPolicy: {
    new (fields?: {
        minDelay?: number;
        maxDelay?: number;
        factor?: number;
        jitter?: number;
        maxAttempts?: number | null;
        stableAfter?: number;
        retryCodes?: number[];
    }): {
        minDelay: number;
        maxDelay: number;
        factor: number;
        jitter: number;
        maxAttempts: number | null;
        stableAfter: number;
        retryCodes: readonly number[];
        delays(random?: () => number): Generator<number, void, void>;
    };
};
export const CloseReason: Readonly<{
    CLIENT_CLOSED: "client closed";
    SERVER_CLOSED: "server closed";
    SHUTDOWN: "shutdown";
    PING_TIMEOUT: "ping timeout";
    MESSAGE_TOO_BIG: "message too big";
    SLOW_CONSUMER: "slow consumer";
    REJECTED: "rejected";
    PROTOCOL_ERROR: "protocol error";
    TRANSPORT_ERROR: "transport error";
    APPLICATION: "application";
    SESSION_LOST: "session lost";
}>;
export const closeReasonFromWire: (code: number | null | undefined, text?: string) => string;
export const closeFromWire: (code: number | null | undefined, text?: string) => {
    reason: string;
    code: number | null;
    text: string | null;
};
export const closeFromText: (text: string) => {
    reason: string;
    code: number | null;
    text: string | null;
} | null;
export const closeCode: (reason: string) => number;
export const RttError: {
    new (message: string): {
        name: string;
        message: string;
        stack?: string;
        cause?: unknown;
    };
};
export const StateError: {
    new (message: string): {
        name: string;
        message: string;
        stack?: string;
        cause?: unknown;
    };
};
export const InvalidMessageError: {
    new (message: string): {
        name: string;
        message: string;
        stack?: string;
        cause?: unknown;
    };
};
export const MessageTooBigError: {
    new (size: number, limit: number): {
        size: number;
        limit: number;
        name: string;
        message: string;
        stack?: string;
        cause?: unknown;
    };
};
export const OfflineQueueFullError: {
    new (size: number): {
        size: number;
        name: string;
        message: string;
        stack?: string;
        cause?: unknown;
    };
};
export const ConnectError: {
    new (message: string, cause?: unknown): {
        cause: unknown;
        name: string;
        message: string;
        stack?: string;
    };
};
export const RejectedError: {
    new (status: number, reason?: string): {
        status: number;
        reason: string;
        cause: unknown;
        name: string;
        message: string;
        stack?: string;
    };
};
export const ConnectionClosed: {
    new (reason: string | null): {
        reason: string | null;
        name: string;
        message: string;
        stack?: string;
        cause?: unknown;
    };
};
declare const rtt: {
    version: string;
    registerTransport: (name: string, adapter: {
        open: (url: string, options: {
            readonly [name: string]: unknown;
            readonly reconnect: {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | null;
            readonly offlineQueueSize: number;
            readonly maxMessageSize: number;
            readonly connectTimeout: number;
            readonly resume: boolean;
        }, sink: {
            opened: () => void;
            message: (data: string | Uint8Array<ArrayBufferLike>) => void;
            closed: (reason: string, code?: number | null, text?: string | null) => void;
            failed: (error: unknown) => void;
        }) => {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        };
    }) => void;
    registerWebSocketTransport: (name: string) => void;
    client: (transport: string, url: string | URL, options?: ConstructorParameters<{
        new (transport: string, url: string | URL, options?: {
            reconnect?: boolean | {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | object;
            offlineQueueSize?: number;
            maxMessageSize?: number;
            connectTimeout?: number;
            resume?: boolean;
        }): {
            transport: string;
            url: string;
            options: {
                readonly [name: string]: unknown;
                readonly reconnect: {
                    minDelay: number;
                    maxDelay: number;
                    factor: number;
                    jitter: number;
                    maxAttempts: number | null;
                    stableAfter: number;
                    retryCodes: readonly number[];
                    delays(random?: () => number): Generator<number, void, void>;
                } | null;
                readonly offlineQueueSize: number;
                readonly maxMessageSize: number;
                readonly connectTimeout: number;
                readonly resume: boolean;
            };
            _adapter: {
                open: (url: string, options: {
                    readonly [name: string]: unknown;
                    readonly reconnect: {
                        minDelay: number;
                        maxDelay: number;
                        factor: number;
                        jitter: number;
                        maxAttempts: number | null;
                        stableAfter: number;
                        retryCodes: readonly number[];
                        delays(random?: () => number): Generator<number, void, void>;
                    } | null;
                    readonly offlineQueueSize: number;
                    readonly maxMessageSize: number;
                    readonly connectTimeout: number;
                    readonly resume: boolean;
                }, sink: {
                    opened: () => void;
                    message: (data: string | Uint8Array<ArrayBufferLike>) => void;
                    closed: (reason: string, code?: number | null, text?: string | null) => void;
                    failed: (error: unknown) => void;
                }) => {
                    send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                    close: (code: number, reasonText: string) => void;
                };
            };
            _state: string;
            _closeReason: string | null;
            _closeCode: number | null;
            _closeText: string | null;
            _conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            } | null;
            _cancel: ((error: {
                cause: unknown;
                name: string;
                message: string;
                stack?: string;
            }) => void) | null;
            _delays: Iterator<number, void> | null;
            _attempts: number;
            _stable: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
            _queue: (string | Uint8Array<ArrayBufferLike>)[];
            _handlers: Map<string, Function[]>;
            _warnedUnhandled: boolean;
            _session: {
                id: string;
                token: string;
                nonce: string;
            } | null;
            _mode: string;
            _inCount: number;
            _sent: (string | Uint8Array<ArrayBufferLike>)[];
            _sentBase: number;
            _forgot: boolean;
            _acked: number;
            _ackBytes: number;
            _ackTimer: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
            _pendingLoss: string | null;
            _signalled: boolean;
            _resumed: boolean;
            _unconfirmed: (string | Uint8Array<ArrayBufferLike>)[];
            _closed: Promise<string>;
            _resolveClosed: (reason: string) => void;
            get state(): string;
            get closeReason(): string | null;
            get closeCode(): number | null;
            get closeText(): string | null;
            get unsent(): (string | Uint8Array<ArrayBuffer>)[];
            get socketId(): string | null;
            get resumed(): boolean;
            get unconfirmed(): (string | Uint8Array<ArrayBuffer>)[];
            on(event: string, handler: Function): /*elided*/ any;
            off(event: string, handler: Function): /*elided*/ any;
            connect(): Promise<void>;
            send(data: string | ArrayBuffer | ArrayBufferView): void;
            close(): void;
            waitClosed(): Promise<string>;
            _attempt(onOpen: (conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, answer?: {
                welcome: {
                    status: string;
                    id: string;
                    token: string;
                    nonce: string;
                    window: number;
                    handled: number;
                    received: number | null;
                    why: string | null;
                    loss: string | null;
                } | null;
                first?: string | Uint8Array<ArrayBufferLike>;
            }) => void, onFail: (error: {
                cause: unknown;
                name: string;
                message: string;
                stack?: string;
            }) => void): void;
            _adopt(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, attempt: number, answer?: {
                welcome: {
                    status: string;
                    id: string;
                    token: string;
                    nonce: string;
                    window: number;
                    handled: number;
                    received: number | null;
                    why: string | null;
                    loss: string | null;
                } | null;
                first?: string | Uint8Array<ArrayBufferLike>;
            }): unknown;
            _write(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, message: string | Uint8Array<ArrayBufferLike>): void;
            _resume(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null): void;
            _welcomeProblem(welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            }): string | null;
            _welcome(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            }): void;
            _dropSession(detail: string): void;
            _forgetSent(): void;
            _first(data: string | Uint8Array<ArrayBufferLike>): boolean;
            _control(letter: string, payload: string): void;
            _signal(detail: string): void;
            _count(message: string | Uint8Array<ArrayBufferLike>): void;
            _ack(): void;
            _broken(): void;
            _received(data: string | Uint8Array<ArrayBufferLike>): void;
            _lost(reason: string, code?: number | null, text?: string | null): void;
            _reconnect(delays: Iterator<number, void>, attempts: number): void;
            _stopAcks(): void;
            _finalise(reason: string): void;
            _emit(event: string, ...args: unknown[]): void;
            _listeners(event: string): Function[];
            _handlerFailed(event: string, error: unknown): void;
        };
    }>[2]) => {
        transport: string;
        url: string;
        options: {
            readonly [name: string]: unknown;
            readonly reconnect: {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | null;
            readonly offlineQueueSize: number;
            readonly maxMessageSize: number;
            readonly connectTimeout: number;
            readonly resume: boolean;
        };
        _adapter: {
            open: (url: string, options: {
                readonly [name: string]: unknown;
                readonly reconnect: {
                    minDelay: number;
                    maxDelay: number;
                    factor: number;
                    jitter: number;
                    maxAttempts: number | null;
                    stableAfter: number;
                    retryCodes: readonly number[];
                    delays(random?: () => number): Generator<number, void, void>;
                } | null;
                readonly offlineQueueSize: number;
                readonly maxMessageSize: number;
                readonly connectTimeout: number;
                readonly resume: boolean;
            }, sink: {
                opened: () => void;
                message: (data: string | Uint8Array<ArrayBufferLike>) => void;
                closed: (reason: string, code?: number | null, text?: string | null) => void;
                failed: (error: unknown) => void;
            }) => {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            };
        };
        _state: string;
        _closeReason: string | null;
        _closeCode: number | null;
        _closeText: string | null;
        _conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        } | null;
        _cancel: ((error: {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        }) => void) | null;
        _delays: Iterator<number, void> | null;
        _attempts: number;
        _stable: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
        _queue: (string | Uint8Array<ArrayBufferLike>)[];
        _handlers: Map<string, Function[]>;
        _warnedUnhandled: boolean;
        _session: {
            id: string;
            token: string;
            nonce: string;
        } | null;
        _mode: string;
        _inCount: number;
        _sent: (string | Uint8Array<ArrayBufferLike>)[];
        _sentBase: number;
        _forgot: boolean;
        _acked: number;
        _ackBytes: number;
        _ackTimer: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
        _pendingLoss: string | null;
        _signalled: boolean;
        _resumed: boolean;
        _unconfirmed: (string | Uint8Array<ArrayBufferLike>)[];
        _closed: Promise<string>;
        _resolveClosed: (reason: string) => void;
        get state(): string;
        get closeReason(): string | null;
        get closeCode(): number | null;
        get closeText(): string | null;
        get unsent(): (string | Uint8Array<ArrayBuffer>)[];
        get socketId(): string | null;
        get resumed(): boolean;
        get unconfirmed(): (string | Uint8Array<ArrayBuffer>)[];
        on(event: string, handler: Function): /*elided*/ any;
        off(event: string, handler: Function): /*elided*/ any;
        connect(): Promise<void>;
        send(data: string | ArrayBuffer | ArrayBufferView): void;
        close(): void;
        waitClosed(): Promise<string>;
        _attempt(onOpen: (conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, answer?: {
            welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null;
            first?: string | Uint8Array<ArrayBufferLike>;
        }) => void, onFail: (error: {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        }) => void): void;
        _adopt(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, attempt: number, answer?: {
            welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null;
            first?: string | Uint8Array<ArrayBufferLike>;
        }): unknown;
        _write(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, message: string | Uint8Array<ArrayBufferLike>): void;
        _resume(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        } | null): void;
        _welcomeProblem(welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        }): string | null;
        _welcome(conn: {
            send: (data: string | Uint8Array<ArrayBufferLike>) => void;
            close: (code: number, reasonText: string) => void;
        }, welcome: {
            status: string;
            id: string;
            token: string;
            nonce: string;
            window: number;
            handled: number;
            received: number | null;
            why: string | null;
            loss: string | null;
        }): void;
        _dropSession(detail: string): void;
        _forgetSent(): void;
        _first(data: string | Uint8Array<ArrayBufferLike>): boolean;
        _control(letter: string, payload: string): void;
        _signal(detail: string): void;
        _count(message: string | Uint8Array<ArrayBufferLike>): void;
        _ack(): void;
        _broken(): void;
        _received(data: string | Uint8Array<ArrayBufferLike>): void;
        _lost(reason: string, code?: number | null, text?: string | null): void;
        _reconnect(delays: Iterator<number, void>, attempts: number): void;
        _stopAcks(): void;
        _finalise(reason: string): void;
        _emit(event: string, ...args: unknown[]): void;
        _listeners(event: string): Function[];
        _handlerFailed(event: string, error: unknown): void;
    };
    Client: {
        new (transport: string, url: string | URL, options?: {
            reconnect?: boolean | {
                minDelay: number;
                maxDelay: number;
                factor: number;
                jitter: number;
                maxAttempts: number | null;
                stableAfter: number;
                retryCodes: readonly number[];
                delays(random?: () => number): Generator<number, void, void>;
            } | object;
            offlineQueueSize?: number;
            maxMessageSize?: number;
            connectTimeout?: number;
            resume?: boolean;
        }): {
            transport: string;
            url: string;
            options: {
                readonly [name: string]: unknown;
                readonly reconnect: {
                    minDelay: number;
                    maxDelay: number;
                    factor: number;
                    jitter: number;
                    maxAttempts: number | null;
                    stableAfter: number;
                    retryCodes: readonly number[];
                    delays(random?: () => number): Generator<number, void, void>;
                } | null;
                readonly offlineQueueSize: number;
                readonly maxMessageSize: number;
                readonly connectTimeout: number;
                readonly resume: boolean;
            };
            _adapter: {
                open: (url: string, options: {
                    readonly [name: string]: unknown;
                    readonly reconnect: {
                        minDelay: number;
                        maxDelay: number;
                        factor: number;
                        jitter: number;
                        maxAttempts: number | null;
                        stableAfter: number;
                        retryCodes: readonly number[];
                        delays(random?: () => number): Generator<number, void, void>;
                    } | null;
                    readonly offlineQueueSize: number;
                    readonly maxMessageSize: number;
                    readonly connectTimeout: number;
                    readonly resume: boolean;
                }, sink: {
                    opened: () => void;
                    message: (data: string | Uint8Array<ArrayBufferLike>) => void;
                    closed: (reason: string, code?: number | null, text?: string | null) => void;
                    failed: (error: unknown) => void;
                }) => {
                    send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                    close: (code: number, reasonText: string) => void;
                };
            };
            _state: string;
            _closeReason: string | null;
            _closeCode: number | null;
            _closeText: string | null;
            _conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            } | null;
            _cancel: ((error: {
                cause: unknown;
                name: string;
                message: string;
                stack?: string;
            }) => void) | null;
            _delays: Iterator<number, void> | null;
            _attempts: number;
            _stable: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
            _queue: (string | Uint8Array<ArrayBufferLike>)[];
            _handlers: Map<string, Function[]>;
            _warnedUnhandled: boolean;
            _session: {
                id: string;
                token: string;
                nonce: string;
            } | null;
            _mode: string;
            _inCount: number;
            _sent: (string | Uint8Array<ArrayBufferLike>)[];
            _sentBase: number;
            _forgot: boolean;
            _acked: number;
            _ackBytes: number;
            _ackTimer: ReturnType<(fn: () => void, seconds: number) => ReturnType<typeof setTimeout> | undefined>;
            _pendingLoss: string | null;
            _signalled: boolean;
            _resumed: boolean;
            _unconfirmed: (string | Uint8Array<ArrayBufferLike>)[];
            _closed: Promise<string>;
            _resolveClosed: (reason: string) => void;
            get state(): string;
            get closeReason(): string | null;
            get closeCode(): number | null;
            get closeText(): string | null;
            get unsent(): (string | Uint8Array<ArrayBuffer>)[];
            get socketId(): string | null;
            get resumed(): boolean;
            get unconfirmed(): (string | Uint8Array<ArrayBuffer>)[];
            on(event: string, handler: Function): /*elided*/ any;
            off(event: string, handler: Function): /*elided*/ any;
            connect(): Promise<void>;
            send(data: string | ArrayBuffer | ArrayBufferView): void;
            close(): void;
            waitClosed(): Promise<string>;
            _attempt(onOpen: (conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, answer?: {
                welcome: {
                    status: string;
                    id: string;
                    token: string;
                    nonce: string;
                    window: number;
                    handled: number;
                    received: number | null;
                    why: string | null;
                    loss: string | null;
                } | null;
                first?: string | Uint8Array<ArrayBufferLike>;
            }) => void, onFail: (error: {
                cause: unknown;
                name: string;
                message: string;
                stack?: string;
            }) => void): void;
            _adopt(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, attempt: number, answer?: {
                welcome: {
                    status: string;
                    id: string;
                    token: string;
                    nonce: string;
                    window: number;
                    handled: number;
                    received: number | null;
                    why: string | null;
                    loss: string | null;
                } | null;
                first?: string | Uint8Array<ArrayBufferLike>;
            }): unknown;
            _write(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, message: string | Uint8Array<ArrayBufferLike>): void;
            _resume(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            } | null): void;
            _welcomeProblem(welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            }): string | null;
            _welcome(conn: {
                send: (data: string | Uint8Array<ArrayBufferLike>) => void;
                close: (code: number, reasonText: string) => void;
            }, welcome: {
                status: string;
                id: string;
                token: string;
                nonce: string;
                window: number;
                handled: number;
                received: number | null;
                why: string | null;
                loss: string | null;
            }): void;
            _dropSession(detail: string): void;
            _forgetSent(): void;
            _first(data: string | Uint8Array<ArrayBufferLike>): boolean;
            _control(letter: string, payload: string): void;
            _signal(detail: string): void;
            _count(message: string | Uint8Array<ArrayBufferLike>): void;
            _ack(): void;
            _broken(): void;
            _received(data: string | Uint8Array<ArrayBufferLike>): void;
            _lost(reason: string, code?: number | null, text?: string | null): void;
            _reconnect(delays: Iterator<number, void>, attempts: number): void;
            _stopAcks(): void;
            _finalise(reason: string): void;
            _emit(event: string, ...args: unknown[]): void;
            _listeners(event: string): Function[];
            _handlerFailed(event: string, error: unknown): void;
        };
    };
    ReconnectPolicy: {
        new (fields?: {
            minDelay?: number;
            maxDelay?: number;
            factor?: number;
            jitter?: number;
            maxAttempts?: number | null;
            stableAfter?: number;
            retryCodes?: number[];
        }): {
            minDelay: number;
            maxDelay: number;
            factor: number;
            jitter: number;
            maxAttempts: number | null;
            stableAfter: number;
            retryCodes: readonly number[];
            delays(random?: () => number): Generator<number, void, void>;
        };
    };
    CloseReason: Readonly<{
        CLIENT_CLOSED: "client closed";
        SERVER_CLOSED: "server closed";
        SHUTDOWN: "shutdown";
        PING_TIMEOUT: "ping timeout";
        MESSAGE_TOO_BIG: "message too big";
        SLOW_CONSUMER: "slow consumer";
        REJECTED: "rejected";
        PROTOCOL_ERROR: "protocol error";
        TRANSPORT_ERROR: "transport error";
        APPLICATION: "application";
        SESSION_LOST: "session lost";
    }>;
    closeReasonFromWire: (code: number | null | undefined, text?: string) => string;
    closeFromWire: (code: number | null | undefined, text?: string) => {
        reason: string;
        code: number | null;
        text: string | null;
    };
    closeFromText: (text: string) => {
        reason: string;
        code: number | null;
        text: string | null;
    } | null;
    closeCode: (reason: string) => number;
    RttError: {
        new (message: string): {
            name: string;
            message: string;
            stack?: string;
            cause?: unknown;
        };
    };
    StateError: {
        new (message: string): {
            name: string;
            message: string;
            stack?: string;
            cause?: unknown;
        };
    };
    InvalidMessageError: {
        new (message: string): {
            name: string;
            message: string;
            stack?: string;
            cause?: unknown;
        };
    };
    MessageTooBigError: {
        new (size: number, limit: number): {
            size: number;
            limit: number;
            name: string;
            message: string;
            stack?: string;
            cause?: unknown;
        };
    };
    OfflineQueueFullError: {
        new (size: number): {
            size: number;
            name: string;
            message: string;
            stack?: string;
            cause?: unknown;
        };
    };
    ConnectError: {
        new (message: string, cause?: unknown): {
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        };
    };
    RejectedError: {
        new (status: number, reason?: string): {
            status: number;
            reason: string;
            cause: unknown;
            name: string;
            message: string;
            stack?: string;
        };
    };
    ConnectionClosed: {
        new (reason: string | null): {
            reason: string | null;
            name: string;
            message: string;
            stack?: string;
            cause?: unknown;
        };
    };
};
