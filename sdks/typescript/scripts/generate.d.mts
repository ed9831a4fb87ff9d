export declare const GENERATED: string;
export declare function renderTypes(document: unknown): Promise<string>;
export declare function fetchDocument(hubUrl: string): Promise<unknown>;
