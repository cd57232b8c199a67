// Original file: proto/sales.proto


export interface CancelUploadResponse {
}

export interface CancelUploadResponse__Output {
}
